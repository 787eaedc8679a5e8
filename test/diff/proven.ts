/** The glibc versions whose profile the differential suite has proven against Debian's build. */
export const PROVEN_VERSIONS: readonly string[] = ['2.31', '2.41', '2.43', '2.44'];
