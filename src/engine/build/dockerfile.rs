//! Where each instruction of a Dockerfile starts, so a failed build step
//! (`Step 3/5 : RUN make`, as the engine's classic builder numbers them) can
//! be reported with its Dockerfile line.
//!
//! Why: the engine names the step but not the line; a user fixing a failed
//! build wants `Dockerfile:7`. The classic builder numbers every instruction
//! in file order (the `ARG`s before the first `FROM` included), so the n-th
//! instruction found here is step n. Pure: takes the text, does no I/O.

/// The 1-based line where each instruction starts, in file order.
pub fn instruction_lines(text: &str) -> Vec<usize> {
    let mut escape = '\\';
    let mut lines = Vec::new();
    let mut in_directives = true;
    let mut continuing = false;
    for (i, raw) in text.lines().enumerate() {
        let trimmed = raw.trim();
        if in_directives {
            // Parser directives (`# escape=`` ` ``, `# syntax=…`) come first.
            if let Some(directive) = trimmed.strip_prefix('#') {
                if let Some((key, value)) = directive.split_once('=') {
                    if key.trim().eq_ignore_ascii_case("escape") {
                        escape = value.trim().chars().next().unwrap_or('\\');
                    }
                    continue;
                }
            }
            in_directives = false;
        }
        if trimmed.is_empty() || trimmed.starts_with('#') {
            // Blank lines and comments, also inside a continued instruction.
            continue;
        }
        if !continuing {
            lines.push(i + 1);
        }
        continuing = trimmed.ends_with(escape);
    }
    lines
}

/// Parses `Step 3/5 : RUN make` into (3, `RUN make`).
pub fn parse_step(line: &str) -> Option<(usize, &str)> {
    let rest = line.trim_start().strip_prefix("Step ")?;
    let (numbers, instruction) = rest.split_once(" : ")?;
    let (n, _) = numbers.split_once('/')?;
    Some((n.trim().parse().ok()?, instruction.trim_end()))
}

/// The line of a `dockerfile parse error line 3: …` message, as the engine words it.
pub fn parse_error_line(message: &str) -> Option<usize> {
    let at = message.find("line ")?;
    let digits: String = message[at + 5..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instructions_skip_comments_blank_lines_and_continuations() {
        let text = "# syntax=docker/dockerfile:1\n\
                    ARG BASE=scratch\n\
                    FROM $BASE\n\
                    \n\
                    # a comment\n\
                    RUN a \\\n\
                    # comment inside\n\
                      && b\n\
                    COPY x /x\n";
        assert_eq!(instruction_lines(text), vec![2, 3, 6, 9]);
    }

    #[test]
    fn the_escape_directive_changes_the_continuation_character() {
        let text = "# escape=`\nFROM scratch\nCOPY a `\n  b\nCOPY c d\n";
        assert_eq!(instruction_lines(text), vec![2, 3, 5]);
    }

    #[test]
    fn step_lines_and_parse_errors() {
        assert_eq!(parse_step("Step 3/5 : RUN false"), Some((3, "RUN false")));
        assert_eq!(parse_step(" ---> Running in abc"), None);
        assert_eq!(
            parse_error_line("dockerfile parse error line 4: unknown instruction: FORM"),
            Some(4)
        );
    }
}
