use super::*;

#[test]
fn a_file_is_replaced_whole_and_no_temporary_remains() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("sub/a.txt");
    write_file_atomically(&path, b"one").unwrap();
    write_file_atomically(&path, b"two").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"two");
    let names: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
    assert_eq!(names.len(), 1, "only the file itself");
}

#[test]
fn a_failed_fill_keeps_the_previous_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ck");
    write_atomically(&dir, |d| write_new_file(&d.join("f"), b"good")).unwrap();
    let err = write_atomically(&dir, |d| {
        write_new_file(&d.join("f"), b"partial")?;
        write_new_file(&d.join("missing/g"), b"x")
    })
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("{} not written: cannot write ", dir.display())),
        "{text}"
    );
    assert!(
        text.contains("missing/g"),
        "the failing file is named: {text}"
    );
    assert_eq!(std::fs::read(dir.join("f")).unwrap(), b"good");
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        1,
        "temporary removed"
    );
}

#[test]
fn recovery_restores_a_version_caught_between_renames_and_removes_temporaries() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // A dead process (pid beyond the kernel's limit) left these behind.
    let dead = 4_999_999;
    std::fs::create_dir(d.join(format!(".checkpoint-4.old-{dead}"))).unwrap();
    std::fs::write(d.join(format!(".checkpoint-4.old-{dead}/state")), "4").unwrap();
    std::fs::create_dir(d.join(format!(".checkpoint-4.tmp-{dead}"))).unwrap();
    std::fs::create_dir(d.join(format!(".checkpoint-2.del-{dead}"))).unwrap();
    std::fs::write(d.join(format!(".config.toml.tmp-{dead}")), "partial").unwrap();
    // A replaced version whose new copy made it: the old one is garbage.
    std::fs::create_dir(d.join("final")).unwrap();
    std::fs::create_dir(d.join(format!(".final.old-{dead}"))).unwrap();
    // Ours (a live process) and names that are not temporaries stay.
    let ours = format!(".x.tmp-{}", std::process::id());
    std::fs::write(d.join(&ours), "").unwrap();
    std::fs::write(d.join(".hidden"), "").unwrap();

    let done = recover_interrupted_writes(d).unwrap();
    assert_eq!(done.len(), 5, "{done:?}");
    let mut left: Vec<String> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, [".hidden", ours.as_str(), "checkpoint-4", "final"]);
    assert_eq!(
        std::fs::read_to_string(d.join("checkpoint-4/state")).unwrap(),
        "4"
    );
}

#[test]
fn a_later_write_of_the_same_file_removes_a_killed_writes_temporary() {
    let tmp = tempfile::tempdir().unwrap();
    let stale = tmp.path().join(".out.json.tmp-4999999");
    std::fs::write(&stale, "partial").unwrap();
    std::fs::write(tmp.path().join(".other.tmp-4999999"), "").unwrap();
    write_file_atomically(&tmp.path().join("out.json"), b"{}").unwrap();
    assert!(!stale.exists());
    assert!(
        tmp.path().join(".other.tmp-4999999").exists(),
        "other names are left"
    );
}

#[test]
fn removal_goes_through_a_temporary_name() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("checkpoint-1");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("a"), "").unwrap();
    remove_dir_atomically(&dir).unwrap();
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}

#[test]
fn sibling_names_parse_back() {
    assert_eq!(
        parse_sibling(".checkpoint-12.tmp-77"),
        Some(("checkpoint-12", ".tmp-", 77))
    );
    assert_eq!(parse_sibling(".a.old-1"), Some(("a", ".old-", 1)));
    assert_eq!(parse_sibling("checkpoint-1"), None);
    assert_eq!(parse_sibling(".a.tmp-x"), None);
}
