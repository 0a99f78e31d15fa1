//! Job claims: before a process runs (or resumes) a sweep job it creates `jobs/<id>.lock`
//! with `O_EXCL`, so two processes working on the same sweep (a second `stochlab sweep` of the
//! same file, a Slurm array task next to a local run) never run one job twice. The file names
//! its holder (host, pid); the holder touches it while the job runs. A claim whose holder is
//! gone (same host, pid not alive) or silent for `STALE` (another host) is taken over.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// A claim not refreshed for this long is abandoned (its holder was killed without cleanup).
pub const STALE: Duration = Duration::from_secs(120);
/// How often a holder refreshes its claim.
pub const HEARTBEAT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Holder {
    pub host: String,
    pub pid: u32,
    pub since: String,
    /// Distinguishes claims of one process (threads) and a new claim from a stale one.
    pub nonce: String,
}

impl Holder {
    fn me() -> Self {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        Holder {
            host: host(),
            pid: std::process::id(),
            since: chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
            nonce: format!(
                "{}-{nanos}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ),
        }
    }

    /// "pid N on host H".
    pub fn describe(&self) -> String {
        format!("pid {} on host {}", self.pid, self.host)
    }
}

fn host() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}

/// Whether process `pid` of this host is alive.
fn alive(pid: u32) -> bool {
    // kill(pid, 0) checks without signalling; EPERM means it exists (another user's).
    let r = unsafe { libc::kill(pid as i32, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// A claim this process holds; released (the file removed) when dropped.
pub struct Claim {
    path: PathBuf,
    holder: Holder,
    last_touch: std::time::Instant,
}

impl Claim {
    /// Refreshes the claim's modification time (at most every `HEARTBEAT`).
    pub fn heartbeat(&mut self) {
        if self.last_touch.elapsed() >= HEARTBEAT {
            if let Ok(f) = std::fs::File::options().append(true).open(&self.path) {
                let _ = f.set_modified(SystemTime::now());
            }
            self.last_touch = std::time::Instant::now();
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        // Remove only our own claim (a taken-over stale one belongs to someone else now).
        if read(&self.path).is_some_and(|h| h.nonce == self.holder.nonce) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn read(path: &Path) -> Option<Holder> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

/// The outcome of trying to claim a job.
pub enum Attempt {
    Claimed(Claim),
    /// Another live process holds it.
    Held(Holder),
}

/// Whether an existing claim is abandoned.
fn stale(path: &Path, h: Option<&Holder>) -> bool {
    let old = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age > STALE);
    match h {
        Some(h) if h.host == host() => !alive(h.pid) || (h.pid == std::process::id() && old),
        // Unreadable (being written) or another host's: only silence tells.
        _ => old,
    }
}

/// Tries to claim the job whose lock file is `path`.
pub fn try_claim(path: &Path) -> Result<Attempt> {
    let me = Holder::me();
    let text = serde_json::to_string(&me)?;
    for _ in 0..3 {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
        {
            Ok(mut f) => {
                use std::io::Write;
                f.write_all(text.as_bytes())
                    .and_then(|_| f.sync_all())
                    .with_context(|| format!("writing {}", path.display()))?;
                return Ok(Attempt::Claimed(Claim {
                    path: path.to_path_buf(),
                    holder: me,
                    last_touch: std::time::Instant::now(),
                }));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let holder = read(path);
                if !stale(path, holder.as_ref()) {
                    return Ok(Attempt::Held(holder.unwrap_or_else(|| Holder {
                        host: "?".into(),
                        pid: 0,
                        since: String::new(),
                        nonce: String::new(),
                    })));
                }
                // Take the abandoned claim aside, then check it was the one judged stale: if a
                // new holder slipped in meanwhile, put theirs back and leave the job to them.
                let aside = path.with_extension(format!("stale-{}", me.nonce));
                if std::fs::rename(path, &aside).is_err() {
                    continue;
                }
                let moved = read(&aside);
                if moved.as_ref().map(|h| &h.nonce) != holder.as_ref().map(|h| &h.nonce) {
                    let _ = std::fs::hard_link(&aside, path);
                    let _ = std::fs::remove_file(&aside);
                    if let Some(h) = moved {
                        return Ok(Attempt::Held(h));
                    }
                    continue;
                }
                let _ = std::fs::remove_file(&aside);
            }
            Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
        }
    }
    Ok(Attempt::Held(read(path).unwrap_or_else(|| Holder {
        host: "?".into(),
        pid: 0,
        since: String::new(),
        nonce: String::new(),
    })))
}

/// The live holder of a job's claim, if any.
pub fn holder(path: &Path) -> Option<Holder> {
    let h = read(path);
    if path.exists() && !stale(path, h.as_ref()) {
        h
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_claim_at_a_time_and_dead_holders_are_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("j.lock");
        let Attempt::Claimed(claim) = try_claim(&p).unwrap() else {
            panic!("first claim")
        };
        match try_claim(&p).unwrap() {
            Attempt::Held(h) => assert_eq!(h.pid, std::process::id()),
            Attempt::Claimed(_) => panic!("claimed twice"),
        }
        assert!(holder(&p).is_some());
        drop(claim);
        assert!(!p.exists(), "released on drop");
        // A claim left by a process that no longer exists.
        let dead = Holder {
            host: host(),
            pid: 999_999_999,
            since: String::new(),
            nonce: "old".into(),
        };
        std::fs::write(&p, serde_json::to_string(&dead).unwrap()).unwrap();
        assert!(holder(&p).is_none());
        assert!(matches!(try_claim(&p).unwrap(), Attempt::Claimed(_)));
    }
}
