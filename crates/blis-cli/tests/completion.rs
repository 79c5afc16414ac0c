//! `blis completion SHELL`: a completion script for each shell, naming the subcommands and
//! their flags.

mod common;

use common::blis;

#[test]
fn each_shell_gets_a_script_naming_the_subcommands() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = blis(&["completion", shell]);
        assert!(out.status.success(), "{shell}: {}", String::from_utf8_lossy(&out.stderr));
        let script = String::from_utf8(out.stdout).unwrap();
        for word in ["run", "replay", "calibrate", "observe", "--trace-header", "--num-instances"] {
            assert!(script.contains(word), "{shell} script lacks {word}");
        }
    }
    let out = blis(&["completion", "ksh"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&out.stderr).trim_end().lines().count(), 1);
}

/// The bash script, sourced by bash, completes a subcommand prefix (skipped without bash).
#[test]
fn bash_completes_a_subcommand() {
    let out = blis(&["completion", "bash"]);
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("blis.bash");
    std::fs::write(&script, &out.stdout).unwrap();
    let probe = format!(
        "source '{}'; COMP_WORDS=(blis cal); COMP_CWORD=1; COMP_LINE='blis cal'; COMP_POINT=8; _blis blis cal blis; echo \"${{COMPREPLY[@]}}\"",
        script.display()
    );
    let Ok(run) = std::process::Command::new("bash").args(["-c", &probe]).output() else {
        eprintln!("no bash: skipped");
        return;
    };
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert_eq!(String::from_utf8_lossy(&run.stdout).trim(), "calibrate");
}
