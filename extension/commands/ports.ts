/** code-server's own port in the session container: the browser IDE, not a server of the user's. */
export const CODE_SERVER_PORT = 8080;

/** Why the text typed as a port cannot be one (the input box shows it), or undefined when it can. */
export function portProblem(text: string): string | undefined {
  const t = text.trim();
  if (!/^\d{1,5}$/.test(t) || Number(t) < 1 || Number(t) > 65535) return 'A port is a whole number from 1 to 65535.';
  if (Number(t) === CODE_SERVER_PORT) return `Port ${CODE_SERVER_PORT} is code-server itself: use Open Session in Browser.`;
  return undefined;
}
