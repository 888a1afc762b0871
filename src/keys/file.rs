//! Reading key and configuration files: regular files only, under a size cap, with a bounded read.
//!
//! A FIFO given as a key file used to block `open()` forever (the reload task wedged, later SIGHUPs were
//! ignored, and shutdown never finished); `/dev/zero` was read until memory ran out. The file is opened
//! non-blocking (so opening a FIFO cannot wait for a writer), checked to be a regular file, and read up to
//! the cap plus one byte (so a file that grows while read is still refused).

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The largest key, secret or configuration file jwtd reads (a JWKS of thousands of keys fits).
pub const MAX_FILE: u64 = 1 << 20;

/// Reads the regular file at `path`, at most [`MAX_FILE`] bytes; errors name the path.
pub fn read_regular(path: &Path) -> Result<Vec<u8>, String> {
    let shown = path.display();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| format!("{shown}: {e}"))?;
    let meta = file.metadata().map_err(|e| format!("{shown}: {e}"))?;
    let kind = meta.file_type();
    if !kind.is_file() {
        use std::os::unix::fs::FileTypeExt;
        let what = if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_dir() {
            "a directory"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "not a regular file"
        };
        return Err(format!(
            "{shown}: {what}; key and configuration files must be regular files"
        ));
    }
    if meta.len() > MAX_FILE {
        return Err(format!(
            "{shown}: {} bytes; key and configuration files are at most {MAX_FILE} bytes",
            meta.len()
        ));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{shown}: {e}"))?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(format!(
            "{shown}: grew past {MAX_FILE} bytes while being read"
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_under_the_cap_are_read() {
        let d = std::env::temp_dir().join(format!("jwtd-keyfile-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("ok"), b"hello").unwrap();
        assert_eq!(read_regular(&d.join("ok")).unwrap(), b"hello");
        let fifo = d.join("fifo");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        let e = read_regular(&fifo).unwrap_err();
        assert!(e.contains("a FIFO"), "{e}");
        assert!(
            read_regular(Path::new("/dev/zero"))
                .unwrap_err()
                .contains("a device")
        );
        assert!(read_regular(&d).unwrap_err().contains("a directory"));
        std::fs::write(d.join("big"), vec![b'x'; MAX_FILE as usize + 1]).unwrap();
        assert!(
            read_regular(&d.join("big"))
                .unwrap_err()
                .contains("at most")
        );
        std::fs::remove_dir_all(&d).unwrap();
    }
}
