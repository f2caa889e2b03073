//! `nvme::open` refuses bad paths with the right error, naming the path,
//! whichever backend was asked for.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is the failure report"
)]

use std::path::Path;

use nvme::uring::UringOptions;
use nvme::{open, Backend, OpenError, OpenOptions};

fn backends() -> [Backend; 2] {
    [Backend::Sync, Backend::Uring(UringOptions::default())]
}

fn options(backend: &Backend, create_bytes: Option<u64>) -> OpenOptions {
    OpenOptions {
        backend: backend.clone(),
        create_bytes,
        ..OpenOptions::default()
    }
}

/// Opens and expects an error, which must name the path.
fn open_error(path: &Path, options: &OpenOptions) -> OpenError {
    match open(path, options) {
        Ok(namespace) => panic!(
            "{}: expected an error, opened {}",
            path.display(),
            namespace.describe()
        ),
        Err(error) => {
            let message = error.to_string();
            assert!(
                message.contains(&*path.to_string_lossy()),
                "the message names the path: {message}"
            );
            error
        }
    }
}

#[test]
fn a_missing_path_without_a_size_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.img");
    for backend in backends() {
        let error = open_error(&path, &options(&backend, None));
        assert!(
            matches!(error, OpenError::NotFound { .. }),
            "{backend:?}: {error:?}"
        );
        assert!(!path.exists(), "nothing is created without a size");
    }
}

#[test]
fn a_path_open_twice_is_in_use() {
    let dir = tempfile::tempdir().unwrap();
    for backend in backends() {
        let path = dir.path().join(format!("{}.img", backend_name(&backend)));
        let first = open(&path, &options(&backend, Some(4 << 20))).unwrap();
        // Same options: the file now exists, so this opens it, and the lock
        // held by `first` refuses.
        let error = open_error(&path, &options(&backend, Some(4 << 20)));
        assert!(
            matches!(error, OpenError::InUse { .. }),
            "{backend:?}: {error:?}"
        );
        drop(first);
        // Released with the namespace.
        open(&path, &options(&backend, None)).unwrap();
    }
}

fn backend_name(backend: &Backend) -> &'static str {
    match backend {
        Backend::Sync => "sync",
        Backend::Uring(_) => "uring",
    }
}

#[test]
fn a_file_below_the_minimum_is_too_small() {
    let dir = tempfile::tempdir().unwrap();
    for backend in backends() {
        // Asked to create it too small.
        let path = dir
            .path()
            .join(format!("create-{}.img", backend_name(&backend)));
        let error = open_error(&path, &options(&backend, Some(64 << 10)));
        assert!(
            matches!(error, OpenError::TooSmall { bytes, bytes_min, .. } if bytes == 64 << 10 && bytes_min == 1 << 20),
            "{backend:?}: {error:?}"
        );
        assert!(!path.exists(), "a refused create leaves no file behind");
        // An existing file that is too small.
        let path = dir
            .path()
            .join(format!("small-{}.img", backend_name(&backend)));
        std::fs::File::create(&path)
            .unwrap()
            .set_len(512 << 10)
            .unwrap();
        let error = open_error(&path, &options(&backend, None));
        assert!(
            matches!(error, OpenError::TooSmall { bytes, .. } if bytes == 512 << 10),
            "{error:?}"
        );
    }
}

#[test]
fn a_size_not_a_multiple_of_the_block_is_not_aligned() {
    let dir = tempfile::tempdir().unwrap();
    for backend in backends() {
        let bytes = (4 << 20) + 512;
        let path = dir
            .path()
            .join(format!("create-{}.img", backend_name(&backend)));
        let error = open_error(&path, &options(&backend, Some(bytes)));
        assert!(
            matches!(error, OpenError::NotAligned { bytes: b, lba_bytes: 4096, .. } if b == bytes),
            "{backend:?}: {error:?}"
        );
        let path = dir
            .path()
            .join(format!("odd-{}.img", backend_name(&backend)));
        std::fs::File::create(&path)
            .unwrap()
            .set_len(bytes)
            .unwrap();
        let error = open_error(&path, &options(&backend, None));
        assert!(matches!(error, OpenError::NotAligned { .. }), "{error:?}");
    }
}

#[test]
fn a_directory_is_not_a_block_device_or_file() {
    let dir = tempfile::tempdir().unwrap();
    for backend in backends() {
        let error = open_error(dir.path(), &options(&backend, Some(4 << 20)));
        assert!(
            matches!(error, OpenError::NotBlockOrFile { .. }),
            "{backend:?}: {error:?}"
        );
    }
}

#[test]
fn tmpfs_opens_or_refuses_direct_io_by_name() {
    let shm = Path::new("/dev/shm");
    if !shm.is_dir() {
        eprintln!("SKIPPED: no /dev/shm (tmpfs) on this machine");
        return;
    }
    let dir = tempfile::tempdir_in(shm).unwrap();
    for backend in backends() {
        let path = dir.path().join(format!("{}.img", backend_name(&backend)));
        match open(&path, &options(&backend, Some(4 << 20))) {
            Ok(namespace) => {
                eprintln!("tmpfs accepts O_DIRECT here: {}", namespace.describe());
                assert_eq!(namespace.geometry().capacity_bytes(), 4 << 20);
            }
            Err(error @ OpenError::DirectIoUnsupported { .. }) => {
                let message = error.to_string();
                assert!(message.contains(path.to_str().unwrap()), "{message}");
                eprintln!("tmpfs refuses O_DIRECT here: {message}");
            }
            Err(other) => panic!("{backend:?} on tmpfs: {other}"),
        }
    }
}
