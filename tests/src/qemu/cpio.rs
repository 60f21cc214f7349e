//! A writer for the `newc` cpio format, the one format the kernel unpacks as an initramfs.
//!
//! Written here rather than shelled out to `cpio`, so building an initramfs needs no staging
//! directory and no extra host package. Parent directories are added on demand, each once.
//! The kernel also accepts several archives one after the other, so the archive is simply the
//! concatenation of entries plus the `TRAILER!!!` record.

use std::collections::BTreeSet;

/// Mode bits of a regular file.
const S_IFREG: u32 = 0o100_000;
/// Mode bits of a directory.
const S_IFDIR: u32 = 0o040_000;
/// Mode bits of a symbolic link.
const S_IFLNK: u32 = 0o120_000;
/// Mode bits of a character device.
const S_IFCHR: u32 = 0o020_000;

/// An initramfs under construction, in memory.
#[derive(Debug, Default)]
pub struct Archive {
    bytes: Vec<u8>,
    dirs: BTreeSet<String>,
    names: BTreeSet<String>,
    next_ino: u32,
}

impl Archive {
    /// An empty archive.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether an entry called `path` (absolute, as in the guest) was already added.
    pub fn contains(&self, path: &str) -> bool {
        let name = normalize(path);
        self.names.contains(&name) || self.dirs.contains(&name)
    }

    /// Whether two guest paths name the same archive entry (`/a//b` and `a/b` do).
    pub fn same_path(a: &str, b: &str) -> bool {
        normalize(a) == normalize(b)
    }

    /// Adds a regular file with permission bits `perm` (for example `0o755`).
    ///
    /// A second file at the same path is ignored: the first one wins (libraries shared by
    /// several binaries are added once).
    pub fn file(&mut self, path: &str, perm: u32, data: &[u8]) {
        let name = normalize(path);
        if !self.names.insert(name.clone()) {
            return;
        }
        self.parents(&name);
        self.entry(&name, S_IFREG | (perm & 0o7777), (0, 0), data);
    }

    /// Adds a symbolic link at `path` pointing to `target`.
    pub fn symlink(&mut self, path: &str, target: &str) {
        let name = normalize(path);
        if !self.names.insert(name.clone()) {
            return;
        }
        self.parents(&name);
        self.entry(&name, S_IFLNK | 0o777, (0, 0), target.as_bytes());
    }

    /// Adds a character device node (the kernel needs `/dev/console` before `/init` runs).
    pub fn char_device(&mut self, path: &str, perm: u32, major: u32, minor: u32) {
        let name = normalize(path);
        if !self.names.insert(name.clone()) {
            return;
        }
        self.parents(&name);
        self.entry(&name, S_IFCHR | (perm & 0o7777), (major, minor), &[]);
    }

    /// Adds a directory (and its parents).
    pub fn dir(&mut self, path: &str) {
        let name = normalize(path);
        self.parents(&name);
        if !name.is_empty() && self.dirs.insert(name.clone()) {
            self.entry(&name, S_IFDIR | 0o755, (0, 0), &[]);
        }
    }

    /// Ends the archive and returns its bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, (0, 0), &[]);
        self.bytes
    }

    fn parents(&mut self, name: &str) {
        let mut prefix = String::new();
        let parts: Vec<&str> = name.split('/').collect();
        for part in &parts[..parts.len().saturating_sub(1)] {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
            if self.dirs.insert(prefix.clone()) {
                let dir = prefix.clone();
                self.entry(&dir, S_IFDIR | 0o755, (0, 0), &[]);
            }
        }
    }

    fn entry(&mut self, name: &str, mode: u32, rdev: (u32, u32), data: &[u8]) {
        self.next_ino += 1;
        let name_len = name.len() + 1; // with the NUL
        let fields = [
            self.next_ino,
            mode,
            0, // uid
            0, // gid
            1, // nlink
            0, // mtime
            u32::try_from(data.len()).unwrap_or(u32::MAX),
            0, // devmajor
            0, // devminor
            rdev.0,
            rdev.1,
            u32::try_from(name_len).unwrap_or(u32::MAX),
            0, // check
        ];
        self.bytes.extend_from_slice(b"070701");
        for field in fields {
            self.bytes
                .extend_from_slice(format!("{field:08X}").as_bytes());
        }
        self.bytes.extend_from_slice(name.as_bytes());
        self.bytes.push(0);
        self.pad();
        self.bytes.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.bytes.len().is_multiple_of(4) {
            self.bytes.push(0);
        }
    }
}

/// `/a//b/` -> `a/b`: cpio names are relative to the root.
fn normalize(path: &str) -> String {
    path.split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Splits an archive back into (name, mode, data) triples.
    fn entries(bytes: &[u8]) -> Vec<(String, u32, Vec<u8>)> {
        let mut out = Vec::new();
        let mut at = 0;
        loop {
            assert_eq!(&bytes[at..at + 6], b"070701");
            let field = |i: usize| {
                let s = std::str::from_utf8(&bytes[at + 6 + 8 * i..at + 14 + 8 * i]).unwrap();
                u32::from_str_radix(s, 16).unwrap() as usize
            };
            let (mode, size, name_len) = (field(1), field(6), field(11));
            let name_at = at + 110;
            let name = std::str::from_utf8(&bytes[name_at..name_at + name_len - 1])
                .unwrap()
                .to_owned();
            let data_at = (name_at + name_len).next_multiple_of(4);
            let data = bytes[data_at..data_at + size].to_vec();
            at = (data_at + size).next_multiple_of(4);
            if name == "TRAILER!!!" {
                assert_eq!(at, bytes.len());
                return out;
            }
            out.push((name, mode as u32, data));
        }
    }

    #[test]
    fn files_get_their_parents_once_and_round_trip() {
        let mut a = Archive::new();
        a.file("/lib/x86_64-linux-gnu/libc.so.6", 0o755, b"libc");
        a.file("/lib/x86_64-linux-gnu/libm.so.6", 0o644, b"libm!");
        a.file("/lib/x86_64-linux-gnu/libc.so.6", 0o755, b"other");
        a.symlink("/bin/sh", "busybox");
        a.char_device("/dev/console", 0o600, 5, 1);
        assert!(a.contains("/lib/x86_64-linux-gnu/libc.so.6"));
        assert!(a.contains("/lib"));
        let got = entries(&a.finish());
        let names: Vec<&str> = got.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "lib",
                "lib/x86_64-linux-gnu",
                "lib/x86_64-linux-gnu/libc.so.6",
                "lib/x86_64-linux-gnu/libm.so.6",
                "bin",
                "bin/sh",
                "dev",
                "dev/console"
            ]
        );
        assert_eq!(got[2].1, S_IFREG | 0o755);
        assert_eq!(got[2].2, b"libc");
        assert_eq!(got[3].2, b"libm!");
        assert_eq!(got[5].1, S_IFLNK | 0o777);
        assert_eq!(got[5].2, b"busybox");
        assert_eq!(got[7].1, S_IFCHR | 0o600);
    }

    #[test]
    fn empty_archive_is_just_the_trailer() {
        let bytes = Archive::new().finish();
        assert!(entries(&bytes).is_empty());
        assert_eq!(bytes.len() % 4, 0);
    }

    #[test]
    fn normalize_strips_slashes_and_dots() {
        assert_eq!(normalize("/a//b/./c/"), "a/b/c");
        assert_eq!(normalize("/"), "");
        assert!(Archive::same_path("/init", "init"));
        assert!(!Archive::same_path("/init", "/sbin/init"));
    }
}
