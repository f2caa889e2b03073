//! The manifest: the bundle's version and every file's name, size and
//! SHA-256, as text. Parsed strictly: one spelling of each line, in one
//! order, so that two different texts never mean the same bundle.

use super::{FILES_MAX, FILE_BYTES_MAX};
use crate::Version;

/// The first line of every manifest of bundle format 1.
const FIRST_LINE: &str = "veltrix-update 1";

/// One file of the slot the bundle carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileEntry {
    /// Its name in the slot: `[a-z0-9._-]`, 1 to 64 characters.
    pub name: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// Its SHA-256.
    pub sha256: [u8; 32],
}

/// What a bundle says it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// The release the slot's files are.
    pub version: Version,
    /// The slot's files, in the order the payload holds them.
    pub files: Vec<FileEntry>,
}

/// Why a manifest was refused (it verified, so its signer wrote it wrong).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("manifest line {line}: {reason}")]
pub struct ManifestError {
    /// 1-based line number (0: the manifest as a whole).
    pub line: usize,
    /// What is wrong with it.
    pub reason: String,
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        && name != "."
        && name != ".."
}

fn sha256_hex(digest: &[u8; 32]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_sha256(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64
        || !text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

impl Manifest {
    /// The manifest's text (what is signed).
    pub fn encode(&self) -> String {
        let mut text = format!("{FIRST_LINE}\nversion {}\n", self.version);
        for file in &self.files {
            text.push_str(&format!(
                "file {} {} {}\n",
                file.name,
                file.bytes,
                sha256_hex(&file.sha256)
            ));
        }
        text
    }

    /// Parses a manifest's text. `encode(parse(t)) == t` for every `t`
    /// accepted.
    pub fn parse(text: &str) -> Result<Manifest, ManifestError> {
        let refuse = |line: usize, reason: String| Err(ManifestError { line, reason });
        let Some(body) = text.strip_suffix('\n') else {
            return refuse(0, "does not end with a newline".into());
        };
        let lines: Vec<&str> = body.split('\n').collect();
        if lines[0] != FIRST_LINE {
            return refuse(1, format!("expected {FIRST_LINE:?}, found {:?}", lines[0]));
        }
        let Some(version) = lines.get(1).and_then(|l| l.strip_prefix("version ")) else {
            return refuse(2, "expected \"version MAJOR.MINOR.PATCH\"".into());
        };
        let version: Version = match version.parse() {
            Ok(v) => v,
            Err(e) => return refuse(2, e.to_string()),
        };
        let mut files: Vec<FileEntry> = Vec::new();
        for (index, line) in lines.iter().enumerate().skip(2) {
            let number = index + 1;
            let fields: Vec<&str> = line.split(' ').collect();
            let ["file", name, bytes, sha256] = fields[..] else {
                return refuse(
                    number,
                    format!("expected \"file NAME BYTES SHA256\", found {line:?}"),
                );
            };
            if !valid_name(name) {
                return refuse(
                    number,
                    format!("file name {name:?} is not [a-z0-9._-]{{1,64}}"),
                );
            }
            if files.iter().any(|f| f.name == name) {
                return refuse(number, format!("file {name} listed twice"));
            }
            let bytes = match bytes.parse::<u64>() {
                Ok(n) if n <= FILE_BYTES_MAX && (n == 0 || !bytes.starts_with('0')) => n,
                _ => {
                    return refuse(
                        number,
                        format!("size {bytes:?} is not 0..={FILE_BYTES_MAX}"),
                    )
                }
            };
            let Some(sha256) = parse_sha256(sha256) else {
                return refuse(
                    number,
                    "SHA-256 is not 64 lowercase hexadecimal digits".into(),
                );
            };
            files.push(FileEntry {
                name: name.into(),
                bytes,
                sha256,
            });
        }
        if files.is_empty() || files.len() > FILES_MAX {
            return refuse(0, format!("lists {} files (1..={FILES_MAX})", files.len()));
        }
        Ok(Manifest { version, files })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Manifest {
        Manifest {
            version: Version {
                major: 0,
                minor: 2,
                patch: 0,
            },
            files: vec![
                FileEntry {
                    name: "vmlinuz".into(),
                    bytes: 10,
                    sha256: [0xab; 32],
                },
                FileEntry {
                    name: "initramfs.img".into(),
                    bytes: 0,
                    sha256: [1; 32],
                },
            ],
        }
    }

    #[test]
    fn round_trips() {
        let text = sample().encode();
        assert_eq!(Manifest::parse(&text), Ok(sample()));
    }

    #[test]
    fn refuses_each_kind_of_wrong_line() {
        let good = sample().encode();
        let cases = [
            good.replace("veltrix-update 1", "veltrix-update 2"),
            good.replace("version 0.2.0", "version 0.2"),
            good.replace("vmlinuz", "../vmlinuz"),
            good.replace("initramfs.img", "vmlinuz"),
            good.replace(" 10 ", " 010 "),
            good.replace(&"ab".repeat(32), &"AB".repeat(32)),
            good.replace("file vmlinuz", "file  vmlinuz"),
            good.trim_end().to_string(),
            "veltrix-update 1\nversion 0.2.0\n".to_string(),
        ];
        for text in cases {
            assert!(Manifest::parse(&text).is_err(), "accepted {text:?}");
        }
    }

    proptest! {
        #[test]
        fn garbage_never_panics(text in "\\PC{0,300}") {
            let _ = Manifest::parse(&text);
        }
    }
}
