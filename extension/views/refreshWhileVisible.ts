import * as vscode from 'vscode';

/**
 * Runs `tick` every `intervalMs` only while the view is visible (countdowns need a redraw; nothing
 * asks the server). The returned disposable stops it.
 */
export function refreshWhileVisible(view: vscode.TreeView<unknown>, intervalMs: number, tick: () => void): vscode.Disposable {
  let timer: NodeJS.Timeout | undefined;
  const update = () => {
    if (view.visible && !timer) {
      tick();
      timer = setInterval(tick, intervalMs);
    } else if (!view.visible && timer) {
      clearInterval(timer);
      timer = undefined;
    }
  };
  const sub = view.onDidChangeVisibility(update);
  update();
  return new vscode.Disposable(() => {
    sub.dispose();
    clearInterval(timer);
  });
}
