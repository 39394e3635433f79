/**
 * What `find -printf` prints of each entry, NUL-terminated: %y type, %s size, %T@ mtime, %C@ ctime,
 * %i inode, %P path below the starting point. The backslashes reach find, which reads \t and \0.
 */
export const FIND_FORMAT = '%y\\t%s\\t%T@\\t%C@\\t%i\\t%P\\0';
// The same for one path, whose own name is not printed: a placeholder stands in.
export const STAT_FORMAT = FIND_FORMAT.replace('%P', 'x');
// A folder the container's user may not read or enter: listed under a type letter find never prints, not walked.
export const UNREADABLE_FORMAT = 'U\\t0\\t0\\t0\\t0\\t%P\\0';
