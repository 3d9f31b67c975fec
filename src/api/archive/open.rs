//! Opening an archived file beneath its root: once, with no window between
//! checking a path and opening it.
//!
//! A path that is checked and then opened again by name can change in
//! between: a folder swapped for a symlink sends the second lookup
//! anywhere. So the file is opened by a single resolution that starts at
//! the root's directory handle and fails rather than leave it, and all that
//! follows (the type check, the size, the bytes) uses the handle that
//! resolution returned.
//!
//! Symlinks below the root are followed when they are relative and stay
//! below it (a `latest -> 2025-08-08` link keeps working). An absolute
//! link, a `..` that would climb above the root, a `/proc` magic link or a
//! loop is refused. Linux's `openat2` with `RESOLVE_BENEATH |
//! RESOLVE_NO_MAGICLINKS` applies these rules in the kernel; where it is
//! missing (kernels before 5.6, or seccomp filters that reject it) a walk
//! one component at a time with `O_NOFOLLOW`, reading each link itself,
//! applies the same ones.

use std::ffi::{OsStr, OsString};
use std::fs::{File, Metadata};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{FileType, Mode, OFlags, ResolveFlags, Stat, CWD};
use rustix::io::Errno;

/// Why a file could not be opened.
#[derive(Debug)]
pub enum OpenError {
    /// Nothing there, or not a regular file.
    Missing,
    /// Resolution would leave the root (absolute link, `..`, magic link,
    /// link loop).
    Outside,
    /// The service may not read it.
    Denied,
    /// Anything else: a server fault.
    Fault(std::io::Error),
}

/// The most symlinks one resolution follows, as the kernel's own limit.
const MAX_LINKS: usize = 40;

/// Flags for the file that is served: `NONBLOCK` so that a FIFO cannot
/// hold the open forever, `NOCTTY` so that a terminal does not become ours.
const READ: OFlags = OFlags::RDONLY
    .union(OFlags::NONBLOCK)
    .union(OFlags::NOCTTY)
    .union(OFlags::CLOEXEC);

/// Opens `relative` beneath `root` and returns it with its metadata, only
/// when it is a regular file.
pub fn open_beneath(root: &Path, relative: &Path) -> Result<(File, Metadata), OpenError> {
    let root = rustix::fs::openat(
        CWD,
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(classify)?;
    regular(match kernel_beneath(root.as_fd(), relative) {
        Err(e) if kernel_cannot(e) => walk_beneath(root.as_fd(), relative),
        other => other,
    })
}

/// The opened handle, checked: only a regular file is served.
fn regular(opened: Result<OwnedFd, Errno>) -> Result<(File, Metadata), OpenError> {
    let file = File::from(opened.map_err(classify)?);
    let meta = file.metadata().map_err(OpenError::Fault)?;
    if !meta.is_file() {
        return Err(OpenError::Missing);
    }
    Ok((file, meta))
}

/// `openat2` confined to `root`.
fn kernel_beneath(root: BorrowedFd<'_>, relative: &Path) -> Result<OwnedFd, Errno> {
    rustix::fs::openat2(
        root,
        relative,
        READ,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
    )
}

/// Errors after which the walk is asked instead: no `openat2` at all
/// (`NOSYS`), one a seccomp filter refuses (`PERM`) or that does not know
/// these flags (`INVAL`, `2BIG`), and a lookup the kernel gave up on
/// because a rename raced it (`AGAIN`). The walk is always correct, only
/// slower.
fn kernel_cannot(e: Errno) -> bool {
    matches!(
        e,
        Errno::NOSYS | Errno::PERM | Errno::INVAL | Errno::TOOBIG | Errno::AGAIN
    )
}

/// One name still to resolve.
enum Step {
    Name(OsString),
    Up,
}

/// The same rules as [`kernel_beneath`], one component at a time: every
/// component is opened with `O_NOFOLLOW` relative to the folder handle
/// before it, so no name is ever looked up twice; a symlink is read
/// through its own handle and its target resolved by this same loop; `..`
/// goes back to the handle it came from, never above the root.
fn walk_beneath(root: BorrowedFd<'_>, relative: &Path) -> Result<OwnedFd, Errno> {
    // Still to resolve, the next one last.
    let mut pending = steps(relative)?;
    pending.reverse();
    let mut folders: Vec<OwnedFd> = Vec::new();
    let mut detours = 0;
    while let Some(step) = pending.pop() {
        let name = match step {
            Step::Up => {
                folders.pop().ok_or(Errno::XDEV)?;
                continue;
            }
            Step::Name(name) => name,
        };
        let parent = folders.last().map_or(root, |f| f.as_fd());
        let entry = rustix::fs::openat(
            parent,
            &name,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let found = rustix::fs::fstat(&entry)?;
        match FileType::from_raw_mode(found.st_mode) {
            FileType::Directory => folders.push(entry),
            FileType::Symlink => {
                detours += 1;
                if detours > MAX_LINKS {
                    return Err(Errno::LOOP);
                }
                // An empty name reads the link the handle itself refers to.
                let target = rustix::fs::readlinkat(&entry, "", Vec::new())?;
                let target = Path::new(OsStr::from_bytes(target.as_bytes()));
                if target.as_os_str().is_empty() {
                    return Err(Errno::NOENT);
                }
                pending.extend(steps(target)?.into_iter().rev());
            }
            _ if pending.is_empty() => {
                match rustix::fs::openat(parent, &name, READ | OFlags::NOFOLLOW, Mode::empty()) {
                    Ok(file) if same_file(&found, &rustix::fs::fstat(&file)?) => return Ok(file),
                    // Replaced between the two opens: resolve the name again.
                    Ok(_) | Err(Errno::LOOP) => {
                        detours += 1;
                        if detours > MAX_LINKS {
                            return Err(Errno::AGAIN);
                        }
                        pending.push(Step::Name(name));
                    }
                    Err(e) => return Err(e),
                }
            }
            _ => return Err(Errno::NOTDIR),
        }
    }
    // The path ends at a folder (or is the root itself).
    Err(Errno::ISDIR)
}

/// The steps of a relative path; an absolute one leaves the root.
fn steps(path: &Path) -> Result<Vec<Step>, Errno> {
    path.components()
        .filter_map(|component| match component {
            Component::Normal(name) => Some(Ok(Step::Name(name.to_owned()))),
            Component::ParentDir => Some(Ok(Step::Up)),
            Component::CurDir => None,
            Component::RootDir | Component::Prefix(_) => Some(Err(Errno::XDEV)),
        })
        .collect()
}

fn same_file(a: &Stat, b: &Stat) -> bool {
    a.st_dev == b.st_dev && a.st_ino == b.st_ino
}

fn classify(e: Errno) -> OpenError {
    match e {
        Errno::NOENT | Errno::NOTDIR | Errno::ISDIR | Errno::NAMETOOLONG => OpenError::Missing,
        Errno::XDEV | Errno::LOOP => OpenError::Outside,
        Errno::ACCESS | Errno::PERM => OpenError::Denied,
        other => OpenError::Fault(other.into()),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::os::unix::fs::symlink;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use super::*;

    type Resolver = fn(BorrowedFd<'_>, &Path) -> Result<OwnedFd, Errno>;
    const RESOLVERS: [(&str, Resolver); 2] = [("openat2", kernel_beneath), ("walk", walk_beneath)];

    /// What a resolution came to: the file's text, or the error class.
    fn outcome(root: &Path, relative: &str, resolve: Resolver) -> String {
        let dir =
            rustix::fs::openat(CWD, root, OFlags::PATH | OFlags::DIRECTORY, Mode::empty()).unwrap();
        match regular(resolve(dir.as_fd(), Path::new(relative))) {
            Ok((mut file, _)) => {
                let mut text = String::new();
                file.read_to_string(&mut text).unwrap();
                text
            }
            Err(OpenError::Missing) => "missing".into(),
            Err(OpenError::Outside) => "outside".into(),
            Err(OpenError::Denied) => "denied".into(),
            Err(OpenError::Fault(e)) => format!("fault {e}"),
        }
    }

    /// A root with files, folders and every kind of link, next to a secret.
    fn layout() -> (tempfile::TempDir, std::path::PathBuf) {
        let top = tempfile::tempdir().unwrap();
        let root = top.path().join("root");
        let day = root.join("day");
        std::fs::create_dir_all(day.join("deep")).unwrap();
        std::fs::write(top.path().join("secret.txt"), "secret").unwrap();
        std::fs::write(day.join("report.txt"), "report").unwrap();
        std::fs::write(day.join("deep/inner.txt"), "inner").unwrap();
        symlink("day", root.join("latest")).unwrap();
        symlink("report.txt", day.join("alias.txt")).unwrap();
        symlink("deep/../report.txt", day.join("winding.txt")).unwrap();
        symlink("../../secret.txt", day.join("climb.txt")).unwrap();
        symlink(top.path().join("secret.txt"), root.join("absolute.txt")).unwrap();
        symlink(day.join("report.txt"), root.join("absolute-inside.txt")).unwrap();
        symlink("..", root.join("up")).unwrap();
        symlink("loop-b", root.join("loop-a")).unwrap();
        symlink("loop-a", root.join("loop-b")).unwrap();
        // A FIFO would block an ordinary open until some writer came along.
        rustix::fs::mknodat(
            CWD,
            root.join("fifo"),
            FileType::Fifo,
            Mode::RUSR | Mode::WUSR,
            0,
        )
        .unwrap();
        (top, root)
    }

    #[test]
    fn both_resolvers_follow_links_that_stay_inside_and_refuse_the_rest() {
        let (_top, root) = layout();
        let cases = [
            ("day/report.txt", "report"),
            ("latest/report.txt", "report"),
            ("latest/alias.txt", "report"),
            ("day/winding.txt", "report"),
            ("latest/deep/inner.txt", "inner"),
            ("day/climb.txt", "outside"),
            ("absolute.txt", "outside"),
            // Absolute targets are refused even when they point inside.
            ("absolute-inside.txt", "outside"),
            ("up/secret.txt", "outside"),
            ("loop-a", "outside"),
            ("day/nothing.txt", "missing"),
            ("day/report.txt/below", "missing"),
            ("day", "missing"),
            ("latest", "missing"),
            ("fifo", "missing"),
        ];
        for (name, resolve) in RESOLVERS {
            for (relative, expected) in cases {
                assert_eq!(
                    outcome(&root, relative, resolve),
                    expected,
                    "{name}: {relative}"
                );
            }
        }
    }

    #[test]
    fn the_walk_refuses_an_absolute_path_and_a_climb() {
        let (_top, root) = layout();
        for relative in ["/etc/hostname", "../secret.txt", "day/../../secret.txt"] {
            assert_eq!(
                outcome(&root, relative, walk_beneath),
                "outside",
                "{relative}"
            );
        }
    }

    /// A folder inside the root flips between a real folder and a symlink
    /// to outside while both resolvers open through it: neither ever
    /// returns the outside file.
    #[test]
    fn a_folder_swapped_for_a_symlink_never_leads_outside() {
        let top = tempfile::tempdir().unwrap();
        let root = top.path().join("root");
        let outside = top.path().join("outside");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("f.txt"), "secret").unwrap();
        let real = root.join("real");
        std::fs::create_dir_all(&real).unwrap();
        std::fs::write(real.join("f.txt"), "inside").unwrap();
        let link_out = root.join("link-out");
        symlink(&outside, &link_out).unwrap();
        let spare = root.join("spare");
        std::fs::create_dir_all(&spare).unwrap();
        std::fs::write(spare.join("f.txt"), "inside").unwrap();

        let stop = Arc::new(AtomicBool::new(false));
        let flipper = {
            let stop = stop.clone();
            let (swing, spare, link_out) = (root.join("swing"), spare.clone(), link_out.clone());
            std::thread::spawn(move || {
                let mut flips = 0u64;
                // `swing` is atomically a folder, then a link to outside.
                // Stops at the first failure too (the folders are gone when a
                // failed assertion unwinds the test).
                while !stop.load(Ordering::Relaxed) && flips < 2_000_000 {
                    let flip = || -> std::io::Result<()> {
                        std::fs::rename(&spare, &swing)?;
                        std::fs::rename(&swing, &spare)?;
                        std::fs::rename(&link_out, &swing)?;
                        std::fs::rename(&swing, &link_out)
                    };
                    if flip().is_err() {
                        break;
                    }
                    flips += 1;
                }
            })
        };
        // Per resolver: how often the folder, and how often the link, was met.
        let mut met = [[0usize; 2]; 2];
        for _ in 0..5_000 {
            for (i, (name, resolve)) in RESOLVERS.into_iter().enumerate() {
                let got = outcome(&root, "swing/f.txt", resolve);
                assert_ne!(got, "secret", "{name} escaped the root");
                met[i][0] += usize::from(got == "inside");
                met[i][1] += usize::from(got == "outside");
            }
        }
        stop.store(true, Ordering::Relaxed);
        flipper.join().unwrap();
        // The race was real: each resolver met both states of the folder.
        assert!(met.iter().flatten().all(|&n| n > 0), "{met:?}");
    }
}
