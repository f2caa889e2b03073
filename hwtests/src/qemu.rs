//! One QEMU guest: the appliance image with one NVMe controller and three
//! namespaces, its data and admin ports forwarded to the host, a console log
//! and a monitor socket.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

/// The controller serial the image's config names (image/veltrix.toml).
pub const SERIAL: &str = "veltrix-hw";
/// Size of each namespace's backing file (sparse).
pub const NAMESPACE_FILE_BYTES: u64 = 1 << 30;

/// The three namespace formats of every boot, by NSID.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// NSID 1: 4 KiB LBAs, no metadata.
    Plain,
    /// NSID 2: PI type 1, metadata in a separate buffer.
    PiSeparate,
    /// NSID 3: PI type 1, metadata inline at the end of each block.
    PiInline,
}

impl Format {
    /// All three, in NSID order.
    pub const ALL: [Format; 3] = [Format::Plain, Format::PiSeparate, Format::PiInline];

    /// The namespace id.
    pub fn nsid(self) -> u32 {
        match self {
            Format::Plain => 1,
            Format::PiSeparate => 2,
            Format::PiInline => 3,
        }
    }

    fn options(self) -> &'static str {
        match self {
            Format::Plain => "logical_block_size=4096,physical_block_size=4096",
            Format::PiSeparate => {
                "logical_block_size=4096,physical_block_size=4096,ms=8,mset=0,pi=1"
            }
            Format::PiInline => "logical_block_size=4096,physical_block_size=4096,ms=8,mset=1,pi=1",
        }
    }

    /// A short name for logs.
    pub fn label(self) -> &'static str {
        match self {
            Format::Plain => "plain 4 KiB (nsid 1)",
            Format::PiSeparate => "PI type 1, separate metadata (nsid 2)",
            Format::PiInline => "PI type 1, inline metadata (nsid 3)",
        }
    }
}

/// How the guest boots.
#[derive(Clone, Debug)]
pub enum Boot {
    /// QEMU's direct boot of the kernel and initramfs; `nsid` chooses the
    /// namespace veltrixd serves.
    Direct {
        vmlinuz: PathBuf,
        initramfs: PathBuf,
        cmdline: String,
        nsid: u32,
    },
    /// Firmware boot of the disk image with OVMF.
    Disk { image: PathBuf, ovmf: PathBuf },
    /// QEMU's direct boot of the image's kernel and initramfs as the A/B
    /// slot selector (`veltrix.stage=select`), with the disk image attached
    /// for its config, boot-state and slot partitions (`docs/upgrades.md`).
    Slots {
        vmlinuz: PathBuf,
        initramfs: PathBuf,
        cmdline: String,
        disk: PathBuf,
        /// Seconds a trial slot has to pass its health check.
        trial_s: u64,
    },
}

/// Everything one boot needs.
#[derive(Clone, Debug)]
pub struct Spec {
    pub boot: Boot,
    /// The scenario's directory: backing files, logs, sockets.
    pub dir: PathBuf,
    /// `-accel` value: `tcg` or `kvm`.
    pub accel: String,
    /// A blkdebug rules file for a namespace, if any.
    pub blkdebug: Option<(Format, PathBuf)>,
    /// Serve with the vfio backend (the userspace NVMe driver): a q35
    /// machine with an emulated Intel IOMMU, `intel_iommu=on` and
    /// `veltrix.backend=vfio` on the kernel command line (direct boot only).
    pub vfio: bool,
}

impl Spec {
    /// The backing file of a namespace.
    pub fn backing(&self, format: Format) -> PathBuf {
        self.dir.join(format!("ns{}.img", format.nsid()))
    }
}

/// A running guest.
pub struct Vm {
    child: Child,
    /// The host address of the guest's RESP port.
    pub resp: SocketAddr,
    /// The host address of the guest's admin port.
    pub admin: SocketAddr,
    /// The console log.
    pub console: PathBuf,
    /// QEMU's trace of NVMe flush commands (vfio boots only).
    pub flush_trace: Option<PathBuf>,
    monitor: PathBuf,
    /// When QEMU was started.
    pub started: Instant,
}

/// Two distinct free ports. Both listeners are held until both ports are
/// known: a port picked and released at once can be handed out again by
/// the next pick (it was, once: QEMU refused the same port for both
/// forwarding rules).
fn two_free_ports() -> anyhow::Result<(u16, u16)> {
    let first = TcpListener::bind("127.0.0.1:0")?;
    let second = TcpListener::bind("127.0.0.1:0")?;
    Ok((first.local_addr()?.port(), second.local_addr()?.port()))
}

/// Creates the three backing files (sparse) if they do not exist.
pub fn create_backing(spec: &Spec) -> anyhow::Result<()> {
    std::fs::create_dir_all(&spec.dir)?;
    for format in Format::ALL {
        let path = spec.backing(format);
        if !path.exists() {
            std::fs::File::create(&path)?.set_len(NAMESPACE_FILE_BYTES)?;
        }
    }
    Ok(())
}

impl Vm {
    /// Starts QEMU; `tag` names the console log (`console-TAG.log`).
    pub fn boot(spec: &Spec, tag: &str) -> anyhow::Result<Vm> {
        create_backing(spec)?;
        let console = spec.dir.join(format!("console-{tag}.log"));
        let monitor = spec.dir.join(format!("monitor-{tag}.sock"));
        let _ = std::fs::remove_file(&monitor);
        let (resp_port, admin_port) = two_free_ports()?;
        let mut command = Command::new("qemu-system-x86_64");
        command
            .args(["-accel", &spec.accel])
            .args(["-cpu", if spec.accel == "kvm" { "host" } else { "max" }])
            .args(["-machine", if spec.vfio { "q35" } else { "pc" }])
            .args(["-m", "1G", "-smp", "2"])
            .args(["-display", "none", "-no-reboot", "-nodefaults"])
            .arg("-serial")
            .arg(format!("file:{}", console.display()))
            .arg("-monitor")
            .arg(format!("unix:{},server=on,wait=off", monitor.display()));
        let flush_trace = spec
            .vfio
            .then(|| spec.dir.join(format!("flush-trace-{tag}.log")));
        if let Some(trace) = &flush_trace {
            // Before the devices it translates for.
            command.args(["-device", "intel-iommu"]);
            // Every NVMe Flush the controller executes: the evidence that
            // the userspace driver's flushes reach it.
            command
                .arg("-trace")
                .arg(format!("enable=pci_nvme_flush_ns,file={}", trace.display()));
        }
        match &spec.boot {
            Boot::Direct {
                vmlinuz,
                initramfs,
                cmdline,
                nsid,
            } => {
                command
                    .arg("-kernel")
                    .arg(vmlinuz)
                    .arg("-initrd")
                    .arg(initramfs)
                    .arg("-append")
                    .arg(format!(
                        "{cmdline} veltrix.nsid={nsid}{}",
                        if spec.vfio {
                            " intel_iommu=on veltrix.backend=vfio"
                        } else {
                            ""
                        }
                    ));
            }
            Boot::Slots {
                vmlinuz,
                initramfs,
                cmdline,
                disk,
                trial_s,
            } => {
                command
                    .arg("-kernel")
                    .arg(vmlinuz)
                    .arg("-initrd")
                    .arg(initramfs)
                    .arg("-append")
                    .arg(format!(
                        "{cmdline} veltrix.nsid=1 veltrix.stage=select veltrix.config=veltrix-config veltrix.trial_s={trial_s}"
                    ))
                    .arg("-drive")
                    .arg(format!("file={},format=raw", disk.display()));
            }
            Boot::Disk { image, ovmf } => {
                command
                    .arg("-bios")
                    .arg(ovmf)
                    .arg("-drive")
                    .arg(format!("file={},format=raw", image.display()));
            }
        }
        command.args(["-device", &format!("nvme,id=nvme0,serial={SERIAL}")]);
        for format in Format::ALL {
            let nsid = format.nsid();
            let file = spec.backing(format);
            let node = match &spec.blkdebug {
                Some((f, rules)) if *f == format => format!(
                    "driver=raw,node-name=d{nsid},file.driver=blkdebug,file.align=4096,file.config={},file.image.driver=file,file.image.filename={}",
                    rules.display(),
                    file.display()
                ),
                _ => format!(
                    "driver=raw,node-name=d{nsid},file.driver=file,file.filename={}",
                    file.display()
                ),
            };
            command.args(["-blockdev", &node]).args([
                "-device",
                &format!(
                    "nvme-ns,id=ns{nsid},bus=nvme0,drive=d{nsid},nsid={nsid},{}",
                    format.options()
                ),
            ]);
        }
        command
            .args([
                "-netdev",
                &format!(
                    "user,id=net0,hostfwd=tcp:127.0.0.1:{resp_port}-:6379,hostfwd=tcp:127.0.0.1:{admin_port}-:9379"
                ),
            ])
            .args(["-device", "e1000,netdev=net0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(spec.dir.join(format!("qemu-{tag}.stderr")))?,
            ));
        let child = command.spawn().context("cannot start qemu-system-x86_64")?;
        Ok(Vm {
            child,
            resp: SocketAddr::from(([127, 0, 0, 1], resp_port)),
            admin: SocketAddr::from(([127, 0, 0, 1], admin_port)),
            console,
            flush_trace,
            monitor,
            started: Instant::now(),
        })
    }

    /// Waits for QEMU to exit by itself (the guest rebooted or powered off:
    /// QEMU runs with `-no-reboot`); returns the time since it started.
    pub fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<Duration> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(self.started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        self.kill9()?;
        anyhow::bail!("the guest did not reboot within {} s", timeout.as_secs())
    }

    /// Waits until `/readyz` answers 200; returns the time since QEMU started.
    pub fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<Duration> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!("QEMU exited ({status}) before the appliance was ready");
            }
            if let Ok((200, _)) = crate::http::get(self.admin, "/readyz", Duration::from_secs(2)) {
                return Ok(self.started.elapsed());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the appliance was not ready within {} s",
                timeout.as_secs()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Runs one HMP command on the monitor and returns its output.
    pub fn monitor(&self, command: &str) -> anyhow::Result<String> {
        let mut stream = UnixStream::connect(&self.monitor)
            .with_context(|| format!("cannot connect to the monitor {}", self.monitor.display()))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let read_prompt = |stream: &mut UnixStream| -> anyhow::Result<String> {
            let mut out = Vec::new();
            let mut byte = [0u8; 512];
            while !String::from_utf8_lossy(&out).contains("(qemu) ") {
                let n = stream.read(&mut byte)?;
                anyhow::ensure!(n > 0, "the monitor closed");
                out.extend_from_slice(&byte[..n]);
            }
            Ok(String::from_utf8_lossy(&out).into_owned())
        };
        read_prompt(&mut stream)?;
        writeln!(stream, "{command}")?;
        read_prompt(&mut stream)
    }

    /// Power loss: SIGKILL to QEMU, no flush, no shutdown.
    pub fn kill9(&mut self) -> anyhow::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// Asks the guest to power off (Ctrl-Alt-Del: veltrix-init stops
    /// veltrixd and powers off) and waits for QEMU to exit.
    pub fn power_off(&mut self, timeout: Duration) -> anyhow::Result<Duration> {
        let started = Instant::now();
        self.monitor("sendkey ctrl-alt-delete")?;
        while started.elapsed() < timeout {
            if self.child.try_wait()?.is_some() {
                return Ok(started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        self.kill9()?;
        anyhow::bail!(
            "the guest did not power off within {} s of Ctrl-Alt-Del (killed)",
            timeout.as_secs()
        )
    }

    /// How many NVMe Flush commands the controller executed so far (vfio
    /// boots trace them; `None` otherwise).
    pub fn flushes(&self) -> Option<usize> {
        let trace = self.flush_trace.as_ref()?;
        Some(
            console_text(trace)
                .lines()
                .filter(|l| l.contains("pci_nvme_flush_ns"))
                .count(),
        )
    }

    /// Whether the console log contains `needle`.
    pub fn console_contains(&self, needle: &str) -> bool {
        console_text(&self.console).contains(needle)
    }
}

/// The console log as text.
pub fn console_text(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

impl Drop for Vm {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
