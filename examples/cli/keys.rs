//! The live view's keys: on a terminal, raw input read without blocking
//! between frames (`s` sort, `t` target, `q` or Ctrl-C quit); elsewhere
//! (a pipe, a test) no keys and the terminal untouched.

use std::io::IsTerminal as _;
use std::time::Duration;

/// What a key asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyAction {
    /// Next sort order.
    Sort,
    /// Next target (all, 0, 1, ...).
    Target,
    /// Stop monitoring.
    Quit,
}

/// The action of a typed character.
pub fn key_action(c: char) -> Option<KeyAction> {
    match c {
        's' | 'S' => Some(KeyAction::Sort),
        't' | 'T' => Some(KeyAction::Target),
        'q' | 'Q' => Some(KeyAction::Quit),
        _ => None,
    }
}

/// Raw keyboard input, while it lives (the terminal is restored on drop).
#[derive(Debug)]
pub struct Keys(());

impl Keys {
    /// Raw input if stdin and stdout are terminals, else `None`.
    pub fn enable() -> Option<Self> {
        if !(std::io::stdin().is_terminal() && std::io::stdout().is_terminal()) {
            return None;
        }
        crossterm::terminal::enable_raw_mode().ok()?;
        Some(Self(()))
    }

    /// The actions typed since the last call, without waiting.
    pub fn poll(&mut self) -> Vec<KeyAction> {
        use crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
        let mut out = Vec::new();
        while event::poll(Duration::ZERO).unwrap_or(false) {
            let Ok(Event::Key(k)) = event::read() else {
                continue;
            };
            if k.kind == KeyEventKind::Release {
                continue;
            }
            match k.code {
                KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => {
                    out.push(KeyAction::Quit)
                }
                KeyCode::Char(c) => out.extend(key_action(c)),
                _ => {}
            }
        }
        out
    }

    /// A frame as raw mode needs it (every line feed also returns).
    pub fn raw_frame(text: &str) -> String {
        text.replace('\n', "\r\n")
    }
}

impl Drop for Keys {
    fn drop(&mut self) {
        let _ = crossterm::terminal::disable_raw_mode();
    }
}
