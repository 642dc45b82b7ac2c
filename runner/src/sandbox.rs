//! The browser sandbox: every Chromium runs as an unprivileged uid in its own mount, pid, ipc and
//! uts namespaces (bubblewrap), seeing read-only only what a browser needs (`/usr`, fonts, CA
//! certificates, the loader cache) and read-write only its own user-data dir. Chromium's own
//! sandbox (namespaces + seccomp for renderers) stays on inside it.
//!
//! The network namespace is shared on purpose: the browser reaches the world only through its
//! egress proxy on loopback, and the runner reaches its DevTools port there.
//!
//! When the server runs as root, the sandbox is entered through `setpriv` as uid/gid 65534
//! (`nobody`) before bubblewrap starts; otherwise bubblewrap maps the server's uid to 65534 in a
//! user namespace, and the mount namespace is what hides the host.

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use anyhow::Context;

/// The size of a browser's private `/tmp` (memory-backed; a page cannot fill RAM through it).
const TMP_BYTES: &str = "268435456";

/// The uid and gid browsers run as.
pub const BROWSER_UID: u32 = 65534;

/// Host paths a browser sees, read-only, when they exist.
const READ_ONLY: &[&str] = &[
    "/usr",
    "/etc/fonts",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/ld.so.cache",
    "/etc/localtime",
    "/etc/alternatives",
];

/// The root file system's compatibility links (merged `/usr`).
const SYMLINKS: &[(&str, &str)] = &[
    ("usr/lib", "/lib"),
    ("usr/lib64", "/lib64"),
    ("usr/bin", "/bin"),
    ("usr/sbin", "/sbin"),
];

/// How browsers are confined.
#[derive(Clone, Debug)]
pub struct Sandbox {
    bwrap: PathBuf,
    /// `setpriv`, when the server is root and drops to [`BROWSER_UID`] before entering.
    setpriv: Option<PathBuf>,
    /// Extra read-only paths: the browser's own directory when it is not under `/usr`.
    extra_read_only: Vec<PathBuf>,
}

impl Sandbox {
    /// Finds bubblewrap (and setpriv when root) and proves the sandbox starts by running
    /// `executable --version` inside it. The error says what is missing and names the opt-out.
    pub async fn probe(executable: &Path) -> anyhow::Result<Self> {
        let bwrap = find_tool("bwrap").context(
            "the browser sandbox needs bubblewrap (`apt-get install bubblewrap`); set \
             DRIFTSTACK_BROWSER_SANDBOX=off to run browsers unconfined (single-tenant development only)",
        )?;
        let setpriv = if is_root() {
            Some(find_tool("setpriv").context(
                "the browser sandbox needs setpriv (util-linux) to drop root; set \
                 DRIFTSTACK_BROWSER_SANDBOX=off to run browsers unconfined (single-tenant development only)",
            )?)
        } else {
            None
        };
        let mut extra_read_only = Vec::new();
        if let Some(dir) = executable.parent()
            && !dir.starts_with("/usr")
        {
            extra_read_only.push(dir.to_path_buf());
        }
        let sandbox = Sandbox {
            bwrap,
            setpriv,
            extra_read_only,
        };
        let probe_root =
            std::env::temp_dir().join(format!("driftstack-probe-{}", std::process::id()));
        let probe_dir = probe_root.join("browser");
        let _ = std::fs::remove_dir_all(&probe_root);
        sandbox.prepare_dir(&probe_root, &probe_dir)?;
        let mut cmd = tokio::process::Command::new(sandbox.program());
        cmd.args(sandbox.prefix_args(&probe_dir))
            .arg(executable)
            .arg("--version")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let output = tokio::time::timeout(Duration::from_secs(20), cmd.output()).await;
        let _ = std::fs::remove_dir_all(&probe_root);
        let output = output
            .context("the browser sandbox did not start within 20 s")?
            .context("the browser sandbox could not be started")?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let first = stderr
                .lines()
                .next()
                .unwrap_or("no output")
                .trim()
                .to_owned();
            anyhow::bail!(
                "the browser sandbox cannot start here ({first}); the kernel must allow \
                 unprivileged user namespaces (see docs/SECURITY.md), or set \
                 DRIFTSTACK_BROWSER_SANDBOX=off to run browsers unconfined (single-tenant development only)"
            );
        }
        Ok(sandbox)
    }

    /// Creates `dir` for a browser inside `root` (this server's own temp root): owned by the
    /// browser's uid (when the server is root), mode 0700; `root` becomes traversable by others
    /// but not listable (the browser's uid must reach its own dir through it).
    pub fn prepare_dir(&self, root: &Path, dir: &Path) -> anyhow::Result<()> {
        anyhow::ensure!(
            dir.parent() == Some(root),
            "a browser dir lies directly in its root"
        );
        std::fs::create_dir_all(root)
            .with_context(|| format!("cannot create {}", root.display()))?;
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o711))
            .with_context(|| format!("cannot set the mode of {}", root.display()))?;
        std::fs::create_dir(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        if self.setpriv.is_some() {
            std::os::unix::fs::chown(dir, Some(BROWSER_UID), Some(BROWSER_UID))
                .with_context(|| format!("cannot hand {} to the browser's uid", dir.display()))?;
        }
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        Ok(())
    }

    /// Creates the files dirs of the browser at `dir` ([`files_dir`]): downloads owned by the
    /// browser's uid (when the server is root), mode 0700; uploads this server's, 0755 (the
    /// browser only reads them).
    pub fn prepare_files(&self, dir: &Path) -> anyhow::Result<()> {
        let files = files_dir(dir);
        std::fs::create_dir(&files)
            .with_context(|| format!("cannot create {}", files.display()))?;
        std::fs::set_permissions(&files, std::fs::Permissions::from_mode(0o711))?;
        let downloads = files.join("downloads");
        std::fs::create_dir(&downloads)?;
        if self.setpriv.is_some() {
            std::os::unix::fs::chown(&downloads, Some(BROWSER_UID), Some(BROWSER_UID))
                .with_context(|| {
                    format!("cannot hand {} to the browser's uid", downloads.display())
                })?;
        }
        std::fs::set_permissions(&downloads, std::fs::Permissions::from_mode(0o700))?;
        let uploads = files.join("uploads");
        std::fs::create_dir(&uploads)?;
        std::fs::set_permissions(&uploads, std::fs::Permissions::from_mode(0o755))?;
        Ok(())
    }

    /// The program that enters the sandbox.
    fn program(&self) -> &Path {
        self.setpriv.as_deref().unwrap_or(&self.bwrap)
    }

    /// Arguments before the browser's own command line; `dir` is the only writable host path,
    /// bound at the same path so the browser's command line names it (the stray sweep finds its
    /// processes by it).
    fn prefix_args(&self, dir: &Path) -> Vec<String> {
        let mut args = Vec::new();
        if self.setpriv.is_some() {
            let id = BROWSER_UID.to_string();
            args.extend([
                format!("--reuid={id}"),
                format!("--regid={id}"),
                "--clear-groups".into(),
                "--".into(),
                self.bwrap.display().to_string(),
            ]);
        } else {
            args.extend(["--unshare-user", "--uid", "65534", "--gid", "65534"].map(String::from));
        }
        args.extend(
            [
                "--unshare-pid",
                "--unshare-ipc",
                "--unshare-uts",
                "--unshare-cgroup-try",
                "--die-with-parent",
                "--new-session",
                "--hostname",
                "browser",
                "--clearenv",
                "--setenv",
                "PATH",
                "/usr/bin:/bin",
                "--setenv",
                "HOME",
            ]
            .map(String::from),
        );
        args.push(dir.display().to_string());
        for path in READ_ONLY
            .iter()
            .map(PathBuf::from)
            .chain(self.extra_read_only.iter().cloned())
        {
            if path.exists() {
                let p = path.display().to_string();
                args.extend(["--ro-bind".into(), p.clone(), p]);
            }
        }
        for (target, link) in SYMLINKS {
            if Path::new(link).exists() {
                args.extend(["--symlink".into(), (*target).into(), (*link).into()]);
            }
        }
        let d = dir.display().to_string();
        args.extend(
            [
                "--proc", "/proc", "--dev", "/dev", "--size", TMP_BYTES, "--tmpfs", "/tmp",
                "--bind",
            ]
            .map(String::from),
        );
        args.extend([d.clone(), d]);
        // The session's files, outside the browser's own dir so that it cannot swap them for
        // links: downloads writable, uploads read-only.
        let files = files_dir(dir);
        if files.exists() {
            for (flag, name) in [("--bind", "downloads"), ("--ro-bind", "uploads")] {
                let p = files.join(name).display().to_string();
                args.extend([flag.into(), p.clone(), p]);
            }
        }
        args.extend(["--chdir".into(), "/".into(), "--".into()]);
        args
    }

    /// Writes a launcher for one browser into `dir`'s parent (outside the sandbox) and returns
    /// its path: chromiumoxide runs it with the browser's flags, it enters the sandbox and `exec`s
    /// the browser, so the child the runner holds is the sandbox itself (killing it kills all).
    pub fn launcher(&self, executable: &Path, dir: &Path) -> anyhow::Result<PathBuf> {
        let script = dir.with_extension("launch");
        let mut text = String::from("#!/bin/sh\nexec ");
        text.push_str(&quote(&self.program().display().to_string()));
        for arg in self.prefix_args(dir) {
            text.push(' ');
            text.push_str(&quote(&arg));
        }
        text.push(' ');
        text.push_str(&quote(&executable.display().to_string()));
        text.push_str(" \"$@\"\n");
        std::fs::write(&script, text)
            .with_context(|| format!("cannot write {}", script.display()))?;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o700))?;
        Ok(script)
    }
}

/// Where the files of the browser whose user-data dir is `dir` live: `<dir>.files/downloads`
/// and `<dir>.files/uploads`, beside the user-data dir (never inside what the browser can write).
pub fn files_dir(dir: &Path) -> PathBuf {
    dir.with_extension("files")
}

/// Single-quotes `s` for `/bin/sh`.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn find_tool(name: &str) -> Option<PathBuf> {
    ["/usr/bin", "/bin", "/usr/sbin", "/sbin", "/usr/local/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// Whether this process runs as uid 0.
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_quotes() {
        assert_eq!(quote("a'b"), r"'a'\''b'");
    }

    #[test]
    fn only_the_browser_dir_is_writable() {
        let sandbox = Sandbox {
            bwrap: "/usr/bin/bwrap".into(),
            setpriv: Some("/usr/bin/setpriv".into()),
            extra_read_only: vec![],
        };
        let args = sandbox.prefix_args(Path::new("/tmp/driftstack-1/browser-x"));
        let binds: Vec<_> = args
            .windows(2)
            .filter(|w| w[0] == "--bind")
            .map(|w| w[1].clone())
            .collect();
        assert_eq!(binds, ["/tmp/driftstack-1/browser-x"]);
        assert!(args.contains(&"--reuid=65534".to_owned()));
        // Nothing binds the host's root or anything outside the read-only list.
        let sources: Vec<_> = args
            .windows(2)
            .filter(|w| w[0] == "--ro-bind" || w[0] == "--bind")
            .map(|w| w[1].as_str())
            .collect();
        assert!(!sources.contains(&"/"), "{sources:?}");
        assert!(
            sources
                .iter()
                .all(|s| READ_ONLY.contains(s) || *s == "/tmp/driftstack-1/browser-x"),
            "{sources:?}"
        );
    }
}
