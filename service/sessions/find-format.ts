/**
 * What `find -printf` prints of each entry, NUL-terminated: %y type, %s size, %T@ mtime, %C@ ctime,
 * %i inode, %P path below the starting point. The backslashes reach find, which reads \t and \0.
 */
export const FIND_FORMAT = '%y\\t%s\\t%T@\\t%C@\\t%i\\t%P\\0';
/**
 * What the editor's folder listing prints: the same, and %Y before the name: the type of what a link
 * leads to, following it (N: nothing, L: a loop, ?: it cannot be told, for a folder the user may not
 * enter); for anything else, %y again. Saves list with FIND_FORMAT, which never follows a link.
 */
export const ENTRY_FORMAT = FIND_FORMAT.replace('%P', '%Y\\t%P');
// The same for one path, whose own name is not printed: a placeholder stands in.
export const STAT_FORMAT = ENTRY_FORMAT.replace('%P', 'x');
/**
 * A shell script that prints the entry of one path, "$p", for the editor (never for a save): STAT_FORMAT,
 * but for a link that leads somewhere the container's user can reach, the size and times of what it
 * leads to (find -L), as VS Code's own disk provider gives them for a link (an editor open on a file
 * through a link sees its changes), and in the name's place the path it leads to (realpath, every
 * link on the way followed; "x" when that cannot be told). A link that leads nowhere (dangling, a
 * loop, a folder the user may not enter) has its own values.
 */
const LINK_FORMAT = 'l\\t%s\\t%T@\\t%C@\\t%i\\t%Y\\t';
export const STAT_SCRIPT =
  `if [ -L "$p" ] && [ -e "$p" ] && find -L "$p" -maxdepth 0 -printf '${LINK_FORMAT}'; ` +
  `then realpath -ze -- "$p" || printf 'x\\0'; else find "$p" -maxdepth 0 -printf '${STAT_FORMAT}'; fi`;
// A folder the container's user may not read or enter: listed under a type letter find never prints, not walked.
export const UNREADABLE_FORMAT = 'U\\t0\\t0\\t0\\t0\\t%P\\0';
