//! Values a secret-revealing command printed: `op read …`, `terraform output -raw …`,
//! `kubectl get secret … | base64 -d`, `printenv DB_PASSWORD`. Their output is a bare value with
//! no name beside it, so nothing in the text says it is a secret; the command does. A terminal
//! transcript keeps the two on adjacent lines (the `command-output` rule); a tool call and its
//! answer keep them in two places of one request, tied by the call's id ([`Calls`]).

use super::json::{self, Segment};
use super::rules::REVEALING_COMMAND;
use std::sync::LazyLock;

static REVEALS: LazyLock<regex::Regex> =
    LazyLock::new(|| regex::Regex::new(REVEALING_COMMAND).expect("the command pattern compiles"));

/// Keys whose strings hold a command an agent asked to run (`input.command`, a call's
/// `arguments` as JSON, Codex's argv).
const COMMAND_KEYS: &[&str] = &[
    "command",
    "cmd",
    "commands",
    "arguments",
    "args",
    "input",
    "script",
];
/// Keys that tie a tool's answer to its call.
const ID_KEYS: &[&str] = &["id", "call_id", "tool_use_id", "tool_call_id", "toolUseId"];
/// Keys whose strings hold what a tool answered.
const OUTPUT_KEYS: &[&str] = &["content", "output", "text", "result", "stdout", "response"];
/// A tool's answer longer than this did not print just a value.
const MAX_OUTPUT: usize = 8 << 10;
/// Lines of an answer looked at.
const MAX_LINES: usize = 64;
/// An argv's words are joined up to this long (a list of documents under `input` is no
/// command).
const MAX_COMMAND_LINE: usize = 16 << 10;

/// Whether `command` (or a call's arguments holding it) prints a secret.
pub(super) fn reveals(command: &str) -> bool {
    if REVEALS.is_match(command) {
        return true;
    }
    // An argv written as JSON (`["op","read","op://…"]`): its words joined.
    command.contains("\",")
        && REVEALS.is_match(&command.replace("\",\"", " ").replace("\", \"", " "))
}

/// Whether a line's only word may be a printed value: not a placeholder (`<sensitive>`, or
/// Tollgate's own, in a body masked before), not a label (`Output:`), not a code fence, two
/// letters or digits at least.
pub(super) fn is_printed_value(v: &str) -> bool {
    v.len() >= 6
        && !super::vault::is_placeholder_token(v)
        && !v.ends_with(':')
        && !v.starts_with("```")
        && v.bytes().filter(u8::is_ascii_alphanumeric).count() >= 2
        && !super::detect::is_placeholder(v)
}

/// Spans of `output` (a tool's answer) that are printed values, with each value: each line
/// that is one word.
/// Codex's answer header (`Exit code: 0` … `Output:`) is skipped, and an answer written as JSON
/// (`{"output": "…", "metadata": …}`) is read through its `output`.
pub(super) fn printed_values(output: &str) -> Vec<(usize, usize, String)> {
    let mut spans = Vec::new();
    if output.len() > MAX_OUTPUT {
        return spans;
    }
    let t = output.trim_start();
    if t.starts_with('{') {
        let _ = json::walk_values_with(
            output,
            |s| -> Result<(), ()> {
                if !s.is_key && !s.is_number && matches!(s.key(), Some("output" | "stdout")) {
                    for (a, b) in lines_of_one_word(s.text) {
                        let (start, end) = s.raw_span(a, b);
                        spans.push((start, end, s.text[a..b].to_owned()));
                    }
                }
                Ok(())
            },
            None,
        );
        return spans;
    }
    let (start, end) = body_of(output);
    lines_of_one_word(&output[start..end])
        .into_iter()
        .map(|(a, b)| {
            (
                start + a,
                start + b,
                output[start + a..start + b].to_owned(),
            )
        })
        .collect()
}

/// What the command printed, in a tool's answer: after Codex's `Output:` line, or from Gemini
/// CLI's `Output: `/`Stdout: ` to its `Error:`/`Stderr:` line; else the whole answer.
fn body_of(output: &str) -> (usize, usize) {
    let line_start = |at: usize| at == 0 || output.as_bytes()[at - 1] == b'\n';
    if let Some(at) = output.find("Output:\n").filter(|&at| line_start(at)) {
        return (at + "Output:\n".len(), output.len());
    }
    if named_command(output).is_some() {
        for label in ["Output: ", "Stdout: "] {
            if let Some(at) = output.find(label).filter(|&at| line_start(at)) {
                let start = at + label.len();
                let end = ["\nError: ", "\nStderr: ", "\nExit Code: "]
                    .iter()
                    .filter_map(|l| output[start..].find(l))
                    .min()
                    .map_or(output.len(), |n| start + n);
                return (start, end);
            }
        }
    }
    (0, output.len())
}

/// The command a tool's answer names on its first line (Gemini CLI: `Command: …`).
fn named_command(output: &str) -> Option<&str> {
    output
        .strip_prefix("Command: ")
        .map(|rest| rest.split('\n').next().unwrap_or(rest))
}

/// A cheap first look for [`printed_values`]: a short answer with a line of one word, or one
/// written as JSON with an `output`.
fn may_hold_a_printed_value(text: &str) -> bool {
    if text.len() > MAX_OUTPUT {
        return false;
    }
    if text.trim_start().starts_with('{') {
        return text.contains("\"output\"") || text.contains("\"stdout\"");
    }
    if named_command(text).is_some() {
        return true;
    }
    text.split('\n').take(MAX_LINES).any(|line| {
        let word = line.trim();
        word.len() >= 6 && !word.contains(char::is_whitespace)
    })
}

fn lines_of_one_word(text: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut at = 0;
    for line in text.split('\n').take(MAX_LINES) {
        let word = line.trim();
        if !word.is_empty() && !word.contains(char::is_whitespace) && is_printed_value(word) {
            let start = at + (line.len() - line.trim_start().len());
            spans.push((start, start + word.len()));
        }
        at += line.len() + 1;
    }
    spans
}

/// What a request's walk noted to tie tool answers to the calls that revealed a secret.
#[derive(Default)]
pub(super) struct Calls {
    /// Objects with an id, and the id.
    ids: Vec<(Vec<Segment<'static>>, String)>,
    /// Paths of command strings that print a secret.
    revealing: Vec<Vec<Segment<'static>>>,
    /// Arrays of a command's words, and the command line they make.
    argv: Vec<(Vec<Segment<'static>>, String)>,
    /// Answers that may hold a printed value: path, raw span in the document, decoded text,
    /// and whether the answer names a command that prints a secret itself.
    outputs: Vec<(Vec<Segment<'static>>, usize, usize, String, bool)>,
    /// Gemini's calls and answers seen so far, by side (answer or not) and function name.
    gemini: Vec<(bool, String, usize)>,
}

fn owned(path: &[Segment<'_>]) -> Vec<Segment<'static>> {
    path.iter().cloned().map(Segment::into_owned).collect()
}

impl Calls {
    /// Notes one string value of the document (not a key, not a number).
    pub(super) fn notice(&mut self, s: &json::StringRef<'_>) {
        if let Some(k) = s.key()
            && ID_KEYS.contains(&k)
            && !s.text.is_empty()
        {
            let path = &s.path.0;
            self.ids
                .push((owned(&path[..path.len() - 1]), s.text.to_owned()));
            return;
        }
        // The Gemini API's calls carry no id (Vertex's and newer ones may): the n-th answer
        // named `f` answers the n-th call of `f`, so that pair is the id both get.
        let path = &s.path.0;
        if s.key() == Some("name")
            && let [.., Segment::Key(side), Segment::Key(_)] = path.as_slice()
            && matches!(side.as_ref(), "functionCall" | "functionResponse")
        {
            let answer = side.as_ref() == "functionResponse";
            let n = match self
                .gemini
                .iter_mut()
                .find(|(a, name, _)| *a == answer && name == s.text)
            {
                Some((_, _, n)) => {
                    *n += 1;
                    *n
                }
                None => {
                    self.gemini.push((answer, s.text.to_owned(), 0));
                    0
                }
            };
            self.ids.push((
                owned(&path[..path.len() - 1]),
                format!("{}#{n}\u{0}gemini", s.text),
            ));
            return;
        }
        let Some(k) = s.key_through_arrays() else {
            return;
        };
        if COMMAND_KEYS.contains(&k) && matches!(s.path.0.last(), Some(Segment::Index(_))) {
            // A word of an argv (Codex's `local_shell_call`: `["printenv", "DB_PASSWORD"]`).
            let array = &s.path.0[..s.path.0.len() - 1];
            match self.argv.last_mut() {
                Some((path, line))
                    if path.as_slice() == array && line.len() + s.text.len() < MAX_COMMAND_LINE =>
                {
                    line.push(' ');
                    line.push_str(s.text);
                }
                Some((path, _)) if path.as_slice() == array => {}
                _ if s.text.len() < MAX_COMMAND_LINE => {
                    self.argv.push((owned(array), s.text.to_owned()))
                }
                _ => {}
            }
        } else if COMMAND_KEYS.contains(&k) && reveals(s.text) {
            self.revealing.push(owned(&s.path.0));
        } else if OUTPUT_KEYS.contains(&k) && may_hold_a_printed_value(s.text) {
            self.outputs.push((
                owned(&s.path.0),
                s.raw_start,
                s.raw_start + s.raw.len(),
                s.text.to_owned(),
                named_command(s.text).is_some_and(reveals),
            ));
        }
    }

    /// Answers to calls that revealed a secret: the path of each, its raw span in the
    /// document, and its decoded text.
    pub(super) fn answers(&self) -> Vec<(&[Segment<'static>], usize, usize, &str)> {
        if self.outputs.is_empty() {
            return Vec::new();
        }
        // Each revealing command's call: the nearest object around it with an id.
        let argv = self
            .argv
            .iter()
            .filter(|(_, line)| reveals(line))
            .map(|(path, _)| path);
        // (Every id of that object: a Responses item has its own `id` and a `call_id`.)
        let calls: Vec<&(Vec<Segment<'static>>, String)> = self
            .revealing
            .iter()
            .chain(argv)
            .flat_map(|p| {
                let around = |o: &Vec<Segment<'static>>| p.starts_with(o);
                let nearest = self
                    .ids
                    .iter()
                    .filter(|(o, _)| around(o))
                    .map(|(o, _)| o.len())
                    .max();
                self.ids
                    .iter()
                    .filter(move |(o, _)| around(o) && Some(o.len()) == nearest)
            })
            .collect();
        self.outputs
            .iter()
            .filter(|(path, _, _, _, names_one)| {
                *names_one
                    || self.ids.iter().any(|(o, id)| {
                        path.starts_with(o)
                            && calls
                                .iter()
                                .any(|(call, call_id)| call_id == id && !path.starts_with(call))
                    })
            })
            .map(|(path, start, end, text, _)| (path.as_slice(), *start, *end, text.as_str()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_that_print_a_secret_and_commands_that_do_not() {
        for c in [
            "op read op://Prod/db/password",
            "terraform output -raw db_password",
            "printenv GITHUB_TOKEN",
            "echo \"${DEPLOY_TOKEN}\"",
            r#"{"command":["op","read","op://x/y/z"]}"#,
        ] {
            assert!(reveals(c), "{c}");
        }
        for c in [
            "ls -la",
            "printenv HOME",
            "echo $PATH",
            "git rev-parse HEAD",
            "cat README.md",
        ] {
            assert!(!reveals(c), "{c}");
        }
    }

    #[test]
    fn an_answers_one_word_lines_are_its_printed_values() {
        let v = "Exit code: 0\nWall time: 0.1 seconds\nOutput:\nS3cr3tValue9\n";
        let spans = printed_values(v);
        assert_eq!(
            spans,
            [(v.len() - 13, v.len() - 1, "S3cr3tValue9".to_owned())]
        );
        let j = r#"{"output":"a\"b=S3cr3tValue9\n","metadata":{"exit_code":0}}"#;
        let spans = printed_values(j);
        let raw: Vec<&str> = spans.iter().map(|(a, b, _)| &j[*a..*b]).collect();
        assert_eq!(raw, [r#"a\"b=S3cr3tValue9"#]);
        assert_eq!(spans[0].2, r#"a"b=S3cr3tValue9"#);
        assert!(printed_values("Error: not found\n<sensitive>\n```\nOutput:\n").is_empty());
    }
}
