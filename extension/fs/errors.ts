import * as vscode from 'vscode';
import { ApiError, errorMessage, isTokenRefused, SIGN_IN_AGAIN } from '../api/errors';

/**
 * A failed fs call as the FileSystemError VS Code expects: the explorer and editors react to the
 * kind (FileNotFound makes "create this file?" work, FileExists asks before replacing). `uri` is
 * the file the call is about; a rename gives its target too, which is the one a file_exists names
 * (the server's 404 of a rename is its source's).
 */
export function toFileSystemError(err: unknown, uri: vscode.Uri, target: vscode.Uri = uri): vscode.FileSystemError {
  if (err instanceof vscode.FileSystemError) return err;
  if (!(err instanceof ApiError)) return vscode.FileSystemError.Unavailable(`${uri.path}: ${errorMessage(err)}`);
  // The server's "send Authorization: Bearer <token>" speaks to an API client; the user needs to sign in.
  if (isTokenRefused(err)) return vscode.FileSystemError.NoPermissions(SIGN_IN_AGAIN);
  switch (err.status) {
    case 404:
      return vscode.FileSystemError.FileNotFound(uri);
    case 409:
      if (err.code === 'file_exists') return vscode.FileSystemError.FileExists(target);
      if (err.code === 'not_empty') return vscode.FileSystemError.NoPermissions(err.message);
      return vscode.FileSystemError.Unavailable(err.message);
    case 400:
      if (err.code === 'is_a_directory') return vscode.FileSystemError.FileIsADirectory(uri);
      if (err.code === 'not_a_directory') return vscode.FileSystemError.FileNotADirectory(uri);
      return vscode.FileSystemError.NoPermissions(err.message);
    case 401:
    case 403:
      return vscode.FileSystemError.NoPermissions(err.message);
    default:
      return vscode.FileSystemError.Unavailable(err.message);
  }
}
