//! `impulsectl top`: a live view of the daemon, refreshed every second (ratatui over
//! crossterm): rates and counters, the busiest queues, the pools and the memory per
//! actor class. Keys sort the queues and suspend, resume or flush the selected domain.
//!
//! [`draw`] and [`on_key`] are pure (a [`View`] and the [`Ui`] state in, a frame or an
//! [`Action`] out) and tested with ratatui's `TestBackend`; [`run`] is the loop that
//! fetches a view over the control socket, draws it and acts on keys.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use impulse_runtime::alloc::MemoryReport;
use impulse_runtime::control::{ArbiterStats, QueueRow, Request, Response, StatusReport};
use impulse_runtime::pool::PoolStats;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Paragraph, Row, Table, TableState};
use ratatui::Frame;

use crate::client;
use crate::render::bytes;

/// How often the view is fetched again.
pub const REFRESH: Duration = Duration::from_secs(1);

/// What the daemon said at the last refresh.
#[derive(Default)]
pub struct View {
    pub status: StatusReport,
    pub queues: Vec<QueueRow>,
    pub memory: Option<MemoryReport>,
    pub pools: Vec<PoolStats>,
    /// The actor arbiters (one event-loop thread each).
    pub arbiters: Vec<ArbiterStats>,
    /// Why the last refresh failed, if it did.
    pub error: Option<String>,
}

/// How the queues are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sort {
    #[default]
    Active,
    Delayed,
    Name,
}

/// The state of the screen between refreshes.
#[derive(Debug, Default)]
pub struct Ui {
    pub sort: Sort,
    /// Index of the selected queue row (in sorted order).
    pub selected: usize,
    /// What the last action answered.
    pub said: Option<String>,
}

/// What a key asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    Nothing,
    Quit,
    /// Send this control request, then refresh.
    Send(Request),
}

/// The queue rows in the order `sort` gives.
pub fn sorted(queues: &[QueueRow], sort: Sort) -> Vec<&QueueRow> {
    let mut rows: Vec<&QueueRow> = queues.iter().collect();
    match sort {
        Sort::Active => rows.sort_by(|a, b| {
            (b.active + b.in_flight)
                .cmp(&(a.active + a.in_flight))
                .then(a.domain.cmp(&b.domain))
        }),
        Sort::Delayed => {
            rows.sort_by(|a, b| b.delayed.cmp(&a.delayed).then(a.domain.cmp(&b.domain)))
        }
        Sort::Name => rows.sort_by(|a, b| a.domain.cmp(&b.domain)),
    }
    rows
}

/// Act on `key`: move the selection, change the order, or build a request for the
/// selected domain.
pub fn on_key(ui: &mut Ui, view: &View, key: KeyCode) -> Action {
    let rows = sorted(&view.queues, ui.sort);
    let selected = rows.get(ui.selected).map(|r| r.domain.clone());
    match key {
        KeyCode::Char('q') | KeyCode::Esc => return Action::Quit,
        KeyCode::Down | KeyCode::Char('j') => {
            ui.selected = (ui.selected + 1).min(rows.len().saturating_sub(1))
        }
        KeyCode::Up | KeyCode::Char('k') => ui.selected = ui.selected.saturating_sub(1),
        KeyCode::Char('a') => ui.sort = Sort::Active,
        KeyCode::Char('d') => ui.sort = Sort::Delayed,
        KeyCode::Char('n') => ui.sort = Sort::Name,
        KeyCode::Char('F') => return Action::Send(Request::Flush { domain: None }),
        KeyCode::Char(c @ ('s' | 'r' | 'f')) => {
            let Some(domain) = selected else {
                ui.said = Some("no queue selected".into());
                return Action::Nothing;
            };
            return Action::Send(match c {
                's' => Request::Suspend {
                    domain,
                    binding: None,
                    duration_secs: None,
                },
                'r' => Request::Resume { domain },
                _ => Request::Flush {
                    domain: Some(domain),
                },
            });
        }
        _ => {}
    }
    Action::Nothing
}

fn duration(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s if s < 86_400 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        s => format!("{}d{:02}h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// Draw `view` into `f`.
pub fn draw(f: &mut Frame, view: &View, ui: &Ui) {
    let [head, queues, bottom, foot] = Layout::vertical([
        Constraint::Length(5),
        Constraint::Min(6),
        Constraint::Length(10),
        Constraint::Length(1),
    ])
    .areas(f.area());
    let s = &view.status;
    let health = if s.spool_healthy {
        "spool ok".to_string()
    } else {
        format!("SPOOL UNHEALTHY: {}", s.spool_error)
    };
    let lines = vec![
        Line::from(format!(
            "impulsed {}  up {}  config generation {}  {health}",
            s.version,
            duration(s.uptime_secs),
            s.config_generation
        )),
        Line::from(format!(
            "received {} ({:.1}/s)  delivered {} ({:.1}/s)  deferred {}  bounced {}  expired {}",
            s.received,
            s.received_per_sec,
            s.delivered,
            s.delivered_per_sec,
            s.deferred,
            s.bounced,
            s.expired
        )),
        Line::from(format!(
            "connections in {} out {}  queued {} active / {} delayed / {} in flight  {} domains  {} panics",
            s.connections_in,
            s.connections_out,
            s.queued_active,
            s.queued_delayed,
            s.in_flight,
            s.domains,
            s.panics
        )),
    ];
    f.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" impulse top ")),
        head,
    );

    let rows = sorted(&view.queues, ui.sort);
    let table_rows = rows.iter().map(|q| {
        let name = match &q.binding {
            Some(b) if !q.domain.starts_with(&format!("{b}/")) => format!("{b}/{}", q.domain),
            _ => q.domain.clone(),
        };
        Row::new(vec![
            name,
            q.state.clone(),
            q.active.to_string(),
            q.delayed.to_string(),
            q.in_flight.to_string(),
            format!("{}/{}", q.connections, q.max_connections),
            q.next_retry_secs.map_or("-".into(), duration),
            q.finished.to_string(),
        ])
    });
    let sort = match ui.sort {
        Sort::Active => "active",
        Sort::Delayed => "delayed",
        Sort::Name => "name",
    };
    let table = Table::new(
        table_rows,
        [
            Constraint::Min(24),
            Constraint::Length(11),
            Constraint::Length(8),
            Constraint::Length(8),
            Constraint::Length(9),
            Constraint::Length(7),
            Constraint::Length(10),
            Constraint::Length(9),
        ],
    )
    .header(
        Row::new([
            "DOMAIN",
            "STATE",
            "ACTIVE",
            "DELAYED",
            "IN FLIGHT",
            "CONN",
            "NEXT RETRY",
            "FINISHED",
        ])
        .style(Style::new().add_modifier(Modifier::BOLD)),
    )
    .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED))
    .block(Block::bordered().title(format!(" queues by {sort} ({}) ", rows.len())));
    let mut state =
        TableState::default().with_selected(Some(ui.selected.min(rows.len().saturating_sub(1))));
    f.render_stateful_widget(table, queues, &mut state);

    let [pools, memory] =
        Layout::horizontal([Constraint::Percentage(45), Constraint::Percentage(55)]).areas(bottom);
    let pool_rows = view
        .pools
        .iter()
        .map(|p| {
            Row::new(vec![
                p.name.clone(),
                p.threads.to_string(),
                p.busy.to_string(),
                p.queued.to_string(),
                p.completed.to_string(),
            ])
        })
        .chain(view.arbiters.iter().map(|a| {
            // An arbiter is one thread; busy is its share of the last second, completed
            // its event-loop turns.
            Row::new(vec![
                format!("arbiter {}", a.index),
                "1".to_string(),
                format!("{:.0}%", a.busy_pct),
                a.queued.to_string(),
                a.turns.to_string(),
            ])
        }));
    f.render_widget(
        Table::new(
            pool_rows,
            [
                Constraint::Min(10),
                Constraint::Length(7),
                Constraint::Length(5),
                Constraint::Length(7),
                Constraint::Length(12),
            ],
        )
        .header(Row::new(["POOL", "THREADS", "BUSY", "QUEUED", "COMPLETED"]))
        .block(Block::bordered().title(" pools ")),
        pools,
    );
    let mut classes: Vec<_> = view
        .memory
        .as_ref()
        .map(|m| m.classes.iter().filter(|c| c.live_bytes != 0).collect())
        .unwrap_or_default();
    classes.sort_by_key(|c| std::cmp::Reverse(c.live_bytes));
    let total = view.memory.as_ref().map_or(0, |m| m.total_live_bytes);
    let mem_rows = classes.iter().map(|c| {
        Row::new(vec![
            c.class.name().to_string(),
            bytes(c.live_bytes),
            c.live_allocs.to_string(),
            bytes(c.peak_bytes),
        ])
    });
    f.render_widget(
        Table::new(
            mem_rows,
            [
                Constraint::Min(10),
                Constraint::Length(11),
                Constraint::Length(9),
                Constraint::Length(11),
            ],
        )
        .header(Row::new(["CLASS", "LIVE", "ALLOCS", "PEAK"]))
        .block(Block::bordered().title(format!(" memory: {} live ", bytes(total)))),
        memory,
    );
    let help = "q quit  ↑↓ select  a/d/n sort  s suspend  r resume  f flush  F flush all";
    let line = match (&view.error, &ui.said) {
        (Some(e), _) => format!("{help}  | {e}"),
        (None, Some(said)) => format!("{help}  | {said}"),
        _ => help.to_string(),
    };
    f.render_widget(Paragraph::new(line), foot);
}

/// Ask the daemon for everything the view shows.
pub fn fetch(socket: &Path) -> View {
    let mut v = View::default();
    let ask = |r: Request| client::exchange(socket, &r).map_err(|e| e.to_string());
    match ask(Request::Status) {
        Ok(Response::Status(s)) => v.status = s,
        Ok(_) => v.error = Some("unexpected answer to status".into()),
        Err(e) => {
            v.error = Some(format!("cannot reach impulsed: {e}"));
            return v;
        }
    }
    if let Ok(Response::Queues { domains }) = ask(Request::Queues) {
        v.queues = domains;
    }
    if let Ok(Response::Memory(m)) = ask(Request::Memory) {
        v.memory = Some(m);
    }
    if let Ok(Response::Pools { pools, arbiters }) = ask(Request::Pools) {
        v.pools = pools;
        v.arbiters = arbiters;
    }
    v
}

/// The live loop: draw, wait up to a second for a key, act, refresh.
pub fn run(socket: &Path) -> ExitCode {
    let first = fetch(socket);
    if let Some(e) = &first.error {
        eprintln!("impulsectl: {e}");
        return ExitCode::from(2);
    }
    let mut terminal = ratatui::init();
    let mut view = first;
    let mut ui = Ui::default();
    let mut fetched = Instant::now();
    let result = loop {
        if let Err(e) = terminal.draw(|f| draw(f, &view, &ui)) {
            break Err(e.to_string());
        }
        let wait = REFRESH.saturating_sub(fetched.elapsed());
        match event::poll(wait) {
            Ok(true) => match event::read() {
                Ok(Event::Key(k)) if k.kind == KeyEventKind::Press => {
                    match on_key(&mut ui, &view, k.code) {
                        Action::Quit => break Ok(()),
                        Action::Send(r) => {
                            ui.said = Some(match client::exchange(socket, &r) {
                                Ok(Response::Ok { message }) => message,
                                Ok(Response::Error { message }) => format!("refused: {message}"),
                                Ok(_) => "done".into(),
                                Err(e) => format!("failed: {e}"),
                            });
                            view = fetch(socket);
                            fetched = Instant::now();
                        }
                        Action::Nothing => {}
                    }
                }
                Ok(_) => {}
                Err(e) => break Err(e.to_string()),
            },
            Ok(false) => {}
            Err(e) => break Err(e.to_string()),
        }
        if fetched.elapsed() >= REFRESH {
            view = fetch(socket);
            fetched = Instant::now();
        }
    };
    ratatui::restore();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("impulsectl: {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    fn view() -> View {
        let q = |d: &str, active, delayed, state: &str| QueueRow {
            domain: d.into(),
            active,
            delayed,
            in_flight: 1,
            connections: 2,
            max_connections: 32,
            state: state.into(),
            next_retry_secs: Some(125),
            finished: 9,
            ..Default::default()
        };
        View {
            status: StatusReport {
                version: "0.1.0".into(),
                uptime_secs: 3725,
                config_generation: 2,
                received: 1234,
                delivered: 1200,
                received_per_sec: 41.5,
                spool_healthy: true,
                ..Default::default()
            },
            queues: vec![
                q("small.example", 1, 50, "backoff"),
                q("big.example", 700, 3, "delivering"),
                q("mid.example", 20, 0, "suspended"),
            ],
            memory: Some(impulse_runtime::alloc::snapshot()),
            pools: vec![PoolStats {
                name: "blocking".into(),
                threads: 4,
                busy: 1,
                queued: 0,
                completed: 777,
                panicked: 0,
                mean_job_micros: 12.0,
            }],
            arbiters: vec![ArbiterStats {
                index: 1,
                actors: 9,
                queued: 3,
                turns: 4242,
                busy_pct: 37.0,
                ..Default::default()
            }],
            error: None,
        }
    }

    fn screen(view: &View, ui: &Ui) -> String {
        let mut t = Terminal::new(TestBackend::new(110, 30)).unwrap();
        t.draw(|f| draw(f, view, ui)).unwrap();
        t.backend().to_string()
    }

    #[test]
    fn renders_rates_queues_pools_and_memory() {
        let v = view();
        let text = screen(&v, &Ui::default());
        for want in [
            "impulsed 0.1.0  up 1h02m  config generation 2  spool ok",
            "received 1234 (41.5/s)  delivered 1200",
            "connections in 0 out 0  queued 0 active",
            "queues by active (3)",
            "big.example",
            "delivering",
            "2/32",
            "2m05s",
            "blocking",
            "777",
            "arbiter 1",
            "37%",
            "4242",
            "memory:",
            "q quit",
        ] {
            assert!(text.contains(want), "{want:?} missing:\n{text}");
        }
        // Busiest first.
        let big = text.find("big.example").unwrap();
        let small = text.find("small.example").unwrap();
        assert!(big < small, "{text}");
    }

    #[test]
    fn keys_sort_select_and_act_on_the_selected_domain() {
        let v = view();
        let mut ui = Ui::default();
        assert_eq!(on_key(&mut ui, &v, KeyCode::Char('d')), Action::Nothing);
        assert_eq!(ui.sort, Sort::Delayed);
        let text = screen(&v, &ui);
        assert!(text.find("small.example").unwrap() < text.find("big.example").unwrap());
        assert_eq!(
            on_key(&mut ui, &v, KeyCode::Char('s')),
            Action::Send(Request::Suspend {
                domain: "small.example".into(),
                binding: None,
                duration_secs: None
            })
        );
        on_key(&mut ui, &v, KeyCode::Down);
        on_key(&mut ui, &v, KeyCode::Down);
        on_key(&mut ui, &v, KeyCode::Down);
        assert_eq!(ui.selected, 2, "stops at the last row");
        assert_eq!(
            on_key(&mut ui, &v, KeyCode::Char('f')),
            Action::Send(Request::Flush {
                domain: Some("mid.example".into())
            })
        );
        on_key(&mut ui, &v, KeyCode::Up);
        assert_eq!(
            on_key(&mut ui, &v, KeyCode::Char('r')),
            Action::Send(Request::Resume {
                domain: "big.example".into()
            })
        );
        assert_eq!(on_key(&mut ui, &v, KeyCode::Char('q')), Action::Quit);
        let empty = View::default();
        let mut ui = Ui::default();
        assert_eq!(on_key(&mut ui, &empty, KeyCode::Char('s')), Action::Nothing);
        assert_eq!(ui.said.as_deref(), Some("no queue selected"));
    }

    #[test]
    fn an_unreachable_daemon_is_said_on_screen() {
        let v = View {
            error: Some("cannot reach impulsed: refused".into()),
            ..Default::default()
        };
        let text = screen(&v, &Ui::default());
        assert!(text.contains("cannot reach impulsed"), "{text}");
    }
}
