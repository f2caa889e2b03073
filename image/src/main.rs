//! `image`: builds the VeltrixDB appliance image from packages on this
//! machine (docs/image.md).
//!
//! `cargo run -p image -- build` writes into `target/image/`:
//! - `vmlinuz`, `initramfs.img` and `cmdline` for QEMU's direct boot;
//! - `veltrix.img`, a GPT disk image that boots under OVMF;
//! - `veltrix-update-VERSION.vxb`, the signed update bundle of the slot
//!   (docs/upgrades.md);
//! - `SHA256SUMS` of all of them.

#![forbid(unsafe_code)]

mod bundle;
mod cpio;
mod disk;
mod modules;
mod tools;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;
use clap::{Parser, Subcommand};

use cpio::Entry;

/// The Rust target of the init (static, musl).
const INIT_TARGET: &str = "x86_64-unknown-linux-musl";
/// The Rust target of veltrixd: static, musl, like the init.
const DAEMON_TARGET: &str = "x86_64-unknown-linux-musl";
/// The kernel command line of both boot paths (the disk adds `veltrix.config=`).
const CMDLINE: &str = "console=ttyS0 panic=-1 loglevel=4";
/// Default SOURCE_DATE_EPOCH: 2026-01-01T00:00:00Z (FAT cannot store 1970).
const EPOCH_DEFAULT: u64 = 1_767_225_600;

#[derive(Parser)]
#[command(about = "Builds the VeltrixDB appliance image (docs/image.md)")]
struct Args {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build the kernel + initramfs pair and the disk image.
    Build {
        /// Output directory (default: TARGET_DIR/image).
        #[arg(long)]
        out: Option<PathBuf>,
        /// The appliance config to build in (default: image/veltrix.toml).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Do not run cargo; use the binaries already built.
        #[arg(long)]
        no_cargo: bool,
        /// The release version the image and its update bundle carry
        /// (MAJOR.MINOR.PATCH; default: the workspace's).
        #[arg(long)]
        version: Option<String>,
        /// The Ed25519 key that signs the update bundle (`image keygen`);
        /// default: a development key in TARGET_DIR/image-keys/.
        #[arg(long)]
        signing_key: Option<PathBuf>,
    },
    /// Check what the build needs and print what is missing.
    Check,
    /// Make a release signing key pair: DIR/NAME.key (secret) and DIR/NAME.pub.
    Keygen {
        /// Where to write them.
        #[arg(long)]
        out: PathBuf,
        /// Their file name without extension.
        #[arg(long, default_value = "release")]
        name: String,
    },
}

/// What `build` builds, and from what.
struct BuildOptions<'a> {
    out: &'a Path,
    config: &'a Path,
    no_cargo: bool,
    version: veltrix_update::Version,
    signing_key: ed25519_dalek::SigningKey,
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
}

fn main() -> anyhow::Result<()> {
    match Args::parse().command {
        Cmd::Check => {
            tools::check()?;
            tools::check_rust_target(INIT_TARGET)?;
            println!("image: everything the build needs is installed");
            Ok(())
        }
        Cmd::Keygen { out, name } => {
            bundle::write_key_pair(&out, &name)?;
            println!(
                "image: wrote {0}/{name}.key (secret: keep it off the appliance) and {0}/{name}.pub",
                out.display()
            );
            Ok(())
        }
        Cmd::Build {
            out,
            config,
            no_cargo,
            version,
            signing_key,
        } => {
            let root = workspace_root();
            let target = target_dir(&root);
            let out = out.unwrap_or_else(|| target.join("image"));
            let config = config.unwrap_or_else(|| root.join("image/veltrix.toml"));
            let version = version.as_deref().unwrap_or(env!("CARGO_PKG_VERSION"));
            let options = BuildOptions {
                out: &out,
                config: &config,
                no_cargo,
                version: version.parse()?,
                signing_key: bundle::signing_key(signing_key.as_deref(), &target)?,
            };
            build(&root, &target, &options)
        }
    }
}

fn cargo_build(
    root: &Path,
    target: &str,
    package: &str,
    rustflags: Option<&str>,
) -> anyhow::Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(root)
        .args([
            "build",
            "--release",
            "--locked",
            "--target",
            target,
            "-p",
            package,
        ])
        // Paths inside the binaries do not depend on where the checkout is.
        .env(
            "RUSTFLAGS",
            format!(
                "{} --remap-path-prefix={}=/veltrix",
                rustflags.unwrap_or(""),
                root.display()
            ),
        );
    eprintln!("image: cargo build --release --target {target} -p {package}");
    let status = command.status().context("cannot run cargo")?;
    anyhow::ensure!(status.success(), "cargo build of {package} failed");
    Ok(())
}

fn stripped(path: &Path) -> anyhow::Result<Vec<u8>> {
    let out = std::env::temp_dir().join(format!("veltrix-image-strip-{}", std::process::id()));
    let status = Command::new("strip")
        .args(["--strip-all", "-o"])
        .arg(&out)
        .arg(path)
        .status()
        .context("cannot run strip")?;
    anyhow::ensure!(status.success(), "strip {} failed", path.display());
    let data = std::fs::read(&out)?;
    std::fs::remove_file(&out)?;
    Ok(data)
}

fn add_parents(entries: &mut BTreeMap<String, Entry>, path: &str) {
    let mut prefix = String::new();
    let parts: Vec<&str> = path.split('/').collect();
    for part in &parts[..parts.len().saturating_sub(1)] {
        if !prefix.is_empty() {
            prefix.push('/');
        }
        prefix.push_str(part);
        entries.entry(prefix.clone()).or_insert(Entry::Directory);
    }
}

fn add_file(entries: &mut BTreeMap<String, Entry>, path: &str, mode: u32, data: Vec<u8>) {
    add_parents(entries, path);
    entries.insert(path.to_string(), Entry::File { mode, data });
}

fn build(root: &Path, target: &Path, options: &BuildOptions) -> anyhow::Result<()> {
    let BuildOptions {
        out,
        config,
        no_cargo,
        ..
    } = *options;
    let started = std::time::Instant::now();
    let tools = tools::check()?;
    tools::check_rust_target(INIT_TARGET)?;
    let config_text = std::fs::read_to_string(config)
        .with_context(|| format!("cannot read the config {}", config.display()))?;
    firmware_config_check(&config_text, config)?;
    let epoch = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) => v.parse().context("SOURCE_DATE_EPOCH is not a number")?,
        Err(_) => EPOCH_DEFAULT,
    };
    if !no_cargo {
        cargo_build(root, INIT_TARGET, "veltrix-init", None)?;
        cargo_build(root, DAEMON_TARGET, "appliance", None)?;
    }
    let init = target.join(INIT_TARGET).join("release/veltrix-init");
    let daemon = target.join(DAEMON_TARGET).join("release/veltrixd");
    std::fs::create_dir_all(out)?;

    let (vmlinuz, kver) = &tools.kernel;
    let mut entries: BTreeMap<String, Entry> = BTreeMap::new();
    for dir in ["dev", "proc", "sys", "run", "tmp", "bin", "etc/veltrix"] {
        add_parents(&mut entries, &format!("{dir}/x"));
    }
    entries.insert(
        "dev/console".into(),
        Entry::CharDevice { major: 5, minor: 1 },
    );
    add_file(&mut entries, "init", 0o755, stripped(&init)?);
    add_file(&mut entries, "bin/veltrixd", 0o755, stripped(&daemon)?);
    add_file(
        &mut entries,
        "bin/busybox",
        0o755,
        std::fs::read(&tools.busybox)?,
    );
    add_file(
        &mut entries,
        "etc/veltrix/veltrix.toml",
        0o644,
        config_text.clone().into_bytes(),
    );
    let mut list = String::from("# Loaded by veltrix-init in this order (written by image).\n");
    for m in modules::BOOT_MODULES {
        list.push_str(m);
        list.push('\n');
    }
    add_file(
        &mut entries,
        "etc/veltrix/modules",
        0o644,
        list.into_bytes(),
    );
    add_modules(&mut entries, kver, out)?;
    add_update_files(&mut entries, options);

    let initramfs = out.join("initramfs.img");
    let mut archive = Vec::new();
    cpio::write(
        &mut archive,
        &entries,
        u32::try_from(epoch).context("epoch")?,
    )?;
    std::fs::write(&initramfs, &archive)?;
    let kernel_out = out.join("vmlinuz");
    std::fs::copy(vmlinuz, &kernel_out)?;
    std::fs::write(out.join("cmdline"), format!("{CMDLINE}\n"))?;
    let bundle = bundle::write_bundle(out, options.version, &options.signing_key)?;
    let image = disk::build(
        &disk::Disk {
            vmlinuz: &kernel_out,
            initramfs: &initramfs,
            cmdline: CMDLINE,
            config_text: &config_text,
            systemd_boot: &tools.systemd_boot,
            bundle: &bundle,
            epoch,
        },
        out,
    )?;
    let bundle_name = bundle
        .file_name()
        .context("bundle file name")?
        .to_string_lossy()
        .into_owned();
    let sums = Command::new("sha256sum")
        .current_dir(out)
        .args(["vmlinuz", "initramfs.img", "veltrix.img", &bundle_name])
        .output()
        .context("cannot run sha256sum")?;
    std::fs::write(out.join("SHA256SUMS"), &sums.stdout)?;
    print!("{}", String::from_utf8_lossy(&sums.stdout));
    println!(
        "image: built in {:.1} s: kernel {kver}, {} initramfs entries ({} bytes), {}",
        started.elapsed().as_secs_f64(),
        entries.len(),
        archive.len(),
        image.display()
    );
    Ok(())
}

/// What the appliance needs to take updates: its own release version and
/// the key(s) it trusts to sign the next one.
fn add_update_files(entries: &mut BTreeMap<String, Entry>, options: &BuildOptions) {
    add_file(
        entries,
        bundle::VERSION_FILE,
        0o644,
        format!("{}\n", options.version).into_bytes(),
    );
    let public = veltrix_update::bundle::encode_verifying_key(&options.signing_key.verifying_key());
    add_file(
        entries,
        &format!("{}/release.pub", bundle::TRUSTED_KEYS_DIR),
        0o644,
        public.into_bytes(),
    );
}

/// The config must parse before it goes into an image that cannot boot without it.
fn firmware_config_check(text: &str, path: &Path) -> anyhow::Result<()> {
    let config =
        firmware_config::parse(text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    anyhow::ensure!(
        !config.namespaces.is_empty(),
        "{}: the appliance config needs at least one [[namespace]] table",
        path.display()
    );
    Ok(())
}

/// Copies the needed modules into a scratch root, runs depmod there, and
/// adds the result to the archive.
fn add_modules(
    entries: &mut BTreeMap<String, Entry>,
    kver: &str,
    out: &Path,
) -> anyhow::Result<()> {
    let system = Path::new("/lib/modules").join(kver);
    let modules_dep = std::fs::read_to_string(system.join("modules.dep"))
        .with_context(|| format!("cannot read {}/modules.dep", system.display()))?;
    let needed = modules::closure(&modules_dep, modules::BOOT_MODULES)?;
    let scratch = out.join("modroot");
    let _ = std::fs::remove_dir_all(&scratch);
    let base = scratch.join("lib/modules").join(kver);
    for module in &needed {
        let target = base.join(module);
        std::fs::create_dir_all(target.parent().context("module path")?)?;
        std::fs::copy(system.join(module), &target)
            .with_context(|| format!("cannot copy module {module}"))?;
    }
    for file in [
        "modules.order",
        "modules.builtin",
        "modules.builtin.modinfo",
    ] {
        if system.join(file).is_file() {
            std::fs::copy(system.join(file), base.join(file))?;
        }
    }
    let status = Command::new("depmod")
        .arg("-b")
        .arg(&scratch)
        .arg(kver)
        .status()
        .context("cannot run depmod")?;
    anyhow::ensure!(status.success(), "depmod failed");
    let mut stack = vec![scratch.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let relative = path.strip_prefix(&scratch)?.to_string_lossy().into_owned();
                add_file(entries, &relative, 0o644, std::fs::read(&path)?);
            }
        }
    }
    std::fs::remove_dir_all(&scratch)?;
    Ok(())
}
