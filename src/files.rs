//! Reading the files the operator names (secrets, the accounts and web configurations, TLS
//! material): regular files only, under a size bound, and never with an open that can block, so
//! that a FIFO, a device or a directory named by mistake (or by an attacker who can write the
//! configuration) is an error naming it, not a reload that hangs or a read that fills memory.

use std::io::Read;
use std::path::Path;

/// The most a secret file (a token, a password, a key pair) may hold.
pub const MAX_SECRET_BYTES: u64 = 64 << 10;
/// The most an accounts file, a web configuration file or a TLS file may hold.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// Why a file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("it is {0}, not a regular file")]
    NotRegular(&'static str),
    #[error("it is larger than {0} bytes, the most such a file may hold")]
    TooLarge(u64),
    #[error("it is not UTF-8 text")]
    NotText,
}

/// The bytes of the regular file at `path`, if it holds at most `max` of them.
pub fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, FileError> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    // Opening a FIFO for reading waits for a writer unless the open is non-blocking; the type
    // is checked right after, before anything is read.
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY);
    }
    let file = options.open(path)?;
    let metadata = file.metadata()?;
    let kind = metadata.file_type();
    if !kind.is_file() {
        return Err(FileError::NotRegular(describe(&kind)));
    }
    if metadata.len() > max {
        return Err(FileError::TooLarge(max));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0));
    // A file that grows while it is read is still cut at the bound.
    file.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(FileError::TooLarge(max));
    }
    Ok(bytes)
}

/// The text of the regular file at `path`, if it holds at most `max` bytes of UTF-8.
pub fn read_text(path: &Path, max: u64) -> Result<String, FileError> {
    String::from_utf8(read_bounded(path, max)?).map_err(|_| FileError::NotText)
}

fn describe(kind: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return "a FIFO";
        }
        if kind.is_char_device() {
            return "a character device";
        }
        if kind.is_block_device() {
            return "a block device";
        }
        if kind.is_socket() {
            return "a socket";
        }
    }
    if kind.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

/// A temporary folder for the files a unit test writes (secrets, accounts files, web
/// configurations), removed when dropped.
#[cfg(test)]
pub(crate) mod scratch {
    use std::path::PathBuf;

    pub struct Scratch(tempfile::TempDir);

    impl Scratch {
        pub fn new() -> Scratch {
            Scratch(tempfile::tempdir().unwrap())
        }

        /// Writes `text` to `name` in the folder.
        pub fn write(&self, name: &str, text: &str) -> PathBuf {
            let path = self.0.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        }

        /// Writes a secrets file readable as `mode` says, and gives its path as text.
        pub fn secret(&self, name: &str, text: &str, mode: u32) -> String {
            let path = self.write(name, text);
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            }
            #[cfg(not(unix))]
            let _ = mode;
            path.to_string_lossy().into_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_under_the_bound_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        // Without a writer, a blocking open would never return.
        let e = read_text(&fifo, MAX_SECRET_BYTES).unwrap_err();
        assert_eq!(e.to_string(), "it is a FIFO, not a regular file");
        let e = read_text(Path::new("/dev/zero"), MAX_SECRET_BYTES).unwrap_err();
        assert_eq!(
            e.to_string(),
            "it is a character device, not a regular file"
        );
        let e = read_text(dir.path(), MAX_SECRET_BYTES).unwrap_err();
        assert_eq!(e.to_string(), "it is a directory, not a regular file");

        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'x'; 65 << 10]).unwrap();
        let e = read_text(&big, MAX_SECRET_BYTES).unwrap_err();
        assert!(matches!(e, FileError::TooLarge(_)), "{e}");
        assert_eq!(read_text(&big, MAX_CONFIG_BYTES).unwrap().len(), 65 << 10);
        std::fs::write(&big, [0xff, 0xfe]).unwrap();
        assert!(matches!(read_text(&big, 10), Err(FileError::NotText)));
    }
}
