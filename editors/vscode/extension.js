// Starts `aigre-policy lsp` for .aigre files and connects VS Code to it over stdio.
"use strict";

const vscode = require("vscode");
const { LanguageClient } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const settings = vscode.workspace.getConfiguration("aigrePolicy");
  const command = settings.get("server.command", "aigre-policy");
  const args = settings.get("server.args", ["lsp"]);
  const docsUrl = settings.get("docsUrl", "");
  const server = { command, args };
  client = new LanguageClient(
    "aigrePolicy",
    "aigre policy",
    { run: server, debug: server },
    {
      documentSelector: [{ scheme: "file", language: "aigre" }],
      // pack.yaml, schemas and fixtures change outside the editor: recompile the pack
      synchronize: {
        fileEvents: vscode.workspace.createFileSystemWatcher("**/*.{aigre,yaml,yml,json}"),
      },
      initializationOptions: docsUrl ? { docsUrl } : {},
    },
  );
  context.subscriptions.push(client);
  return client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
