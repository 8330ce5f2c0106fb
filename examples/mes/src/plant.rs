//! The sample plant: three lines, eight machines, shift figures and work orders, all seeded with
//! fixed values (no randomness), plus what the tools change or observe while the server runs.

use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;

/// A production line.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Line {
    pub id: &'static str,
    pub name: &'static str,
}

/// Operating state of a machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MachineState {
    Running,
    Idle,
    Down,
    Maintenance,
}

/// One machine on a line, as `machine_status` reports it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Machine {
    pub id: &'static str,
    pub line_id: &'static str,
    pub name: &'static str,
    pub status: MachineState,
    /// The active alarm, if any.
    pub alarm: Option<&'static str>,
    /// Last measured cycle time, seconds (0 when the machine is not cycling).
    pub cycle_time_s: f64,
    pub target_cycle_time_s: f64,
    /// What `temperature_c` measures: "oil", "spindle", "booth", ...
    pub temperature_kind: &'static str,
    pub temperature_c: f64,
    pub uptime_hours: f64,
    /// ISO date.
    pub last_maintenance: &'static str,
}

/// A work order, seeded or created through `create_work_order`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkOrder {
    pub id: String,
    pub machine_id: String,
    pub title: String,
    /// One of "low", "medium", "high", "urgent".
    pub priority: String,
    pub description: Option<String>,
    /// "open" for every order the server holds.
    pub status: String,
    /// RFC 3339, UTC.
    pub created_at: String,
}

/// Seeded figures of one line in one shift, from which `line_oee` computes its ratios.
struct ShiftFigures {
    line_id: &'static str,
    shift: &'static str,
    planned_minutes: u32,
    /// Ideal (target) seconds per part of the line's bottleneck.
    ideal_cycle_s: f64,
    total_count: u32,
    good_count: u32,
    /// (reason, minutes); the run time is the planned time less all of them.
    downtime: &'static [(&'static str, u32)],
}

const LINES: &[Line] = &[
    Line {
        id: "L1",
        name: "Stamping",
    },
    Line {
        id: "L2",
        name: "Welding & assembly",
    },
    Line {
        id: "L3",
        name: "Paint",
    },
];

fn seed_machines() -> Vec<Machine> {
    use MachineState::*;
    let machine = |id, line_id, name, status, alarm, cycle, target, kind, temp, uptime, maint| Machine {
        id,
        line_id,
        name,
        status,
        alarm,
        cycle_time_s: cycle,
        target_cycle_time_s: target,
        temperature_kind: kind,
        temperature_c: temp,
        uptime_hours: uptime,
        last_maintenance: maint,
    };
    vec![
        machine(
            "PRESS-01",
            "L1",
            "800 t transfer press",
            Running,
            None,
            3.1,
            3.0,
            "oil",
            46.5,
            1284.0,
            "2026-10-28",
        ),
        machine(
            "PRESS-02",
            "L1",
            "600 t progressive press",
            Down,
            Some("hydraulic pressure low (E-214), tripped 2x this shift"),
            0.0,
            3.0,
            "oil",
            61.8,
            2210.5,
            "2026-08-14",
        ),
        machine(
            "WELD-03",
            "L2",
            "Spot-weld cell 3",
            Running,
            None,
            58.4,
            55.0,
            "electrode",
            38.2,
            932.0,
            "2026-11-09",
        ),
        machine(
            "ROBOT-04",
            "L2",
            "Handling robot 4",
            Idle,
            Some("waiting for parts from WELD-03 (starved)"),
            0.0,
            55.0,
            "motor",
            31.0,
            4120.0,
            "2026-09-30",
        ),
        machine(
            "CNC-05",
            "L2",
            "5-axis machining centre",
            Running,
            None,
            142.0,
            140.0,
            "spindle",
            41.7,
            1876.3,
            "2026-10-02",
        ),
        machine(
            "PAINT-06",
            "L3",
            "Base-coat booth robot",
            Running,
            Some("bell cup speed deviation (W-031), warning only"),
            72.0,
            70.0,
            "booth",
            23.4,
            3015.0,
            "2026-11-18",
        ),
        machine(
            "OVEN-07",
            "L3",
            "Curing oven",
            Running,
            None,
            70.0,
            70.0,
            "zone",
            182.5,
            6420.0,
            "2026-07-21",
        ),
        machine(
            "INSPECT-08",
            "L3",
            "Paint inspection tunnel",
            Maintenance,
            Some("planned camera recalibration, back 14:00"),
            0.0,
            70.0,
            "cabinet",
            27.9,
            1502.0,
            "2026-11-30",
        ),
    ]
}

const SHIFTS: &[ShiftFigures] = &[
    ShiftFigures {
        line_id: "L1",
        shift: "A",
        planned_minutes: 450,
        ideal_cycle_s: 3.0,
        total_count: 6960,
        good_count: 6824,
        downtime: &[
            ("PRESS-02 hydraulic pressure low (E-214)", 46),
            ("Die change PRESS-01", 24),
            ("Coil material wait", 11),
            ("Scrap chute jam", 4),
        ],
    },
    ShiftFigures {
        line_id: "L1",
        shift: "B",
        planned_minutes: 450,
        ideal_cycle_s: 3.0,
        total_count: 7980,
        good_count: 7902,
        downtime: &[
            ("Die change PRESS-02", 22),
            ("Coil material wait", 9),
            ("Sensor fault PRESS-01 (E-108)", 6),
        ],
    },
    ShiftFigures {
        line_id: "L1",
        shift: "C",
        planned_minutes: 420,
        ideal_cycle_s: 3.0,
        total_count: 7120,
        good_count: 7085,
        downtime: &[
            ("Planned lubrication", 20),
            ("Die change PRESS-01", 18),
            ("No operator", 15),
        ],
    },
    ShiftFigures {
        line_id: "L2",
        shift: "A",
        planned_minutes: 450,
        ideal_cycle_s: 55.0,
        total_count: 402,
        good_count: 391,
        downtime: &[
            ("ROBOT-04 starved (waiting for WELD-03)", 31),
            ("WELD-03 tip dressing", 14),
            ("CNC-05 tool change", 9),
        ],
    },
    ShiftFigures {
        line_id: "L2",
        shift: "B",
        planned_minutes: 450,
        ideal_cycle_s: 55.0,
        total_count: 441,
        good_count: 433,
        downtime: &[
            ("WELD-03 tip dressing", 13),
            ("Fixture clamp fault (E-377)", 8),
            ("CNC-05 tool change", 7),
        ],
    },
    ShiftFigures {
        line_id: "L2",
        shift: "C",
        planned_minutes: 420,
        ideal_cycle_s: 55.0,
        total_count: 398,
        good_count: 395,
        downtime: &[
            ("WELD-03 tip dressing", 12),
            ("CNC-05 tool change", 8),
            ("Safety fence reset", 5),
        ],
    },
    ShiftFigures {
        line_id: "L3",
        shift: "A",
        planned_minutes: 450,
        ideal_cycle_s: 70.0,
        total_count: 330,
        good_count: 309,
        downtime: &[
            ("Colour change", 21),
            ("INSPECT-08 camera recalibration", 12),
            ("PAINT-06 bell cup cleaning", 8),
        ],
    },
    ShiftFigures {
        line_id: "L3",
        shift: "B",
        planned_minutes: 450,
        ideal_cycle_s: 70.0,
        total_count: 340,
        good_count: 324,
        downtime: &[
            ("Colour change", 19),
            ("Conveyor stop (E-520)", 10),
            ("OVEN-07 zone 2 warm-up", 6),
        ],
    },
    ShiftFigures {
        line_id: "L3",
        shift: "C",
        planned_minutes: 420,
        ideal_cycle_s: 70.0,
        total_count: 310,
        good_count: 298,
        downtime: &[
            ("Colour change", 17),
            ("Booth filter change", 15),
            ("OVEN-07 zone 2 warm-up", 6),
        ],
    },
];

fn seed_work_orders() -> Vec<WorkOrder> {
    let order = |id: &str, machine: &str, title: &str, priority: &str, description: &str, created_at: &str| WorkOrder {
        id: id.to_owned(),
        machine_id: machine.to_owned(),
        title: title.to_owned(),
        priority: priority.to_owned(),
        description: Some(description.to_owned()),
        status: "open".to_owned(),
        created_at: created_at.to_owned(),
    };
    vec![
        order(
            "WO-1001",
            "PRESS-02",
            "Hydraulic pressure low (E-214): check pump and accumulator",
            "urgent",
            "Press tripped twice this shift on E-214; oil at 61.8 C. Check the pump, accumulator pre-charge and relief valve.",
            "2026-11-30T06:12:00Z",
        ),
        order(
            "WO-1002",
            "WELD-03",
            "Replace tip dresser cutter",
            "high",
            "Cycle time 58.4 s against 55 s target; dressing takes longer with the worn cutter.",
            "2026-11-29T22:40:00Z",
        ),
        order(
            "WO-1003",
            "PAINT-06",
            "Bell cup speed deviation (W-031)",
            "medium",
            "Inspect the bell cup and turbine bearings; clean at the next colour change.",
            "2026-11-29T14:05:00Z",
        ),
        order(
            "WO-1004",
            "CNC-05",
            "Spindle vibration trend review",
            "low",
            "Vibration up 8% over two weeks; review the trend before the next planned stop.",
            "2026-11-27T09:30:00Z",
        ),
    ]
}

/// What `line_oee` returns.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LineOee {
    pub line_id: &'static str,
    pub line_name: &'static str,
    pub shift: &'static str,
    /// Run minutes / planned minutes.
    pub availability: f64,
    /// (ideal cycle time x total count) / run time.
    pub performance: f64,
    /// Good count / total count.
    pub quality: f64,
    /// availability x performance x quality of the rounded ratios, rounded to 4 decimals.
    pub oee: f64,
    pub planned_minutes: u32,
    pub run_minutes: u32,
    pub good_count: u32,
    pub total_count: u32,
    pub top_downtime: Vec<Downtime>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Downtime {
    pub reason: &'static str,
    pub minutes: u32,
}

/// Why a request about the plant cannot be served; a tool reports it as an error result.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlantError {
    #[error("unknown machine `{0}`; known machines: {1}")]
    UnknownMachine(String, String),
    #[error("unknown line `{0}`; known lines: L1 (Stamping), L2 (Welding & assembly), L3 (Paint)")]
    UnknownLine(String),
    #[error("machine {machine} is on line {actual}, not on line {asked}")]
    MachineNotOnLine {
        machine: String,
        actual: String,
        asked: String,
    },
    #[error("title must not be empty")]
    EmptyTitle,
    #[error("title is {0} characters long; at most {MAX_TITLE_CHARS} are allowed")]
    TitleTooLong(usize),
    #[error("description is {0} characters long; at most {MAX_DESCRIPTION_CHARS} are allowed")]
    DescriptionTooLong(usize),
}

pub const MAX_TITLE_CHARS: usize = 200;
pub const MAX_DESCRIPTION_CHARS: usize = 2000;
const FIRST_CREATED_NUMBER: u32 = 1005;

struct State {
    machines: Vec<Machine>,
    work_orders: Vec<WorkOrder>,
    created: Vec<WorkOrder>,
    next_number: u32,
    seen_users: Vec<String>,
}

/// The plant the server serves; cheap to clone (shared state).
#[derive(Clone)]
pub struct Plant {
    state: Arc<Mutex<State>>,
}

fn round4(value: f64) -> f64 {
    (value * 10_000.0).round() / 10_000.0
}

impl Plant {
    /// The seeded plant: lines L1-L3, machines PRESS-01 to INSPECT-08, work orders WO-1001 to
    /// WO-1004 (the next created one is WO-1005).
    pub fn sample() -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                machines: seed_machines(),
                work_orders: seed_work_orders(),
                created: Vec::new(),
                next_number: FIRST_CREATED_NUMBER,
                seen_users: Vec::new(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent through a panic elsewhere (each change is one push), so a
        // poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Work orders created through `create_work_order`, in order.
    pub fn created_work_orders(&self) -> Vec<WorkOrder> {
        self.lock().created.clone()
    }

    /// The `x-athena-user` header values of the MCP requests received, in order (a value equal
    /// to the previous one is not repeated).
    pub fn seen_users(&self) -> Vec<String> {
        self.lock().seen_users.clone()
    }

    pub(crate) fn record_user(&self, user: &str) {
        let mut state = self.lock();
        if state.seen_users.last().map(String::as_str) != Some(user) {
            state.seen_users.push(user.to_owned());
        }
    }

    pub fn lines(&self) -> &'static [Line] {
        LINES
    }

    fn check_line(line_id: &str) -> Result<&'static Line, PlantError> {
        LINES
            .iter()
            .find(|line| line.id == line_id)
            .ok_or_else(|| PlantError::UnknownLine(line_id.to_owned()))
    }

    fn find_machine<'a>(machines: &'a [Machine], machine_id: &str) -> Result<&'a Machine, PlantError> {
        machines.iter().find(|machine| machine.id == machine_id).ok_or_else(|| {
            let known = machines.iter().map(|machine| machine.id).collect::<Vec<_>>().join(", ");
            PlantError::UnknownMachine(machine_id.to_owned(), known)
        })
    }

    /// Machines matching the filters (all of them without any); unknown ids are errors, as is a
    /// machine asked for on a line it is not on.
    pub fn machines(&self, machine_id: Option<&str>, line_id: Option<&str>) -> Result<Vec<Machine>, PlantError> {
        if let Some(line_id) = line_id {
            Self::check_line(line_id)?;
        }
        let state = self.lock();
        if let Some(machine_id) = machine_id {
            let machine = Self::find_machine(&state.machines, machine_id)?;
            if let Some(line_id) = line_id {
                if machine.line_id != line_id {
                    return Err(PlantError::MachineNotOnLine {
                        machine: machine.id.to_owned(),
                        actual: machine.line_id.to_owned(),
                        asked: line_id.to_owned(),
                    });
                }
            }
            return Ok(vec![machine.clone()]);
        }
        Ok(state
            .machines
            .iter()
            .filter(|machine| line_id.is_none_or(|line_id| machine.line_id == line_id))
            .cloned()
            .collect())
    }

    /// OEE of a line in a shift ("A", "B" or "C").
    pub fn line_oee(&self, line_id: &str, shift: &str) -> Result<LineOee, PlantError> {
        let line = Self::check_line(line_id)?;
        let figures = SHIFTS
            .iter()
            .find(|figures| figures.line_id == line_id && figures.shift == shift)
            .ok_or_else(|| PlantError::UnknownLine(line_id.to_owned()))?;
        let downtime_minutes: u32 = figures.downtime.iter().map(|(_, minutes)| minutes).sum();
        let run_minutes = figures.planned_minutes.saturating_sub(downtime_minutes);
        let availability = round4(f64::from(run_minutes) / f64::from(figures.planned_minutes));
        let performance = if run_minutes == 0 {
            0.0
        } else {
            round4(figures.ideal_cycle_s * f64::from(figures.total_count) / (f64::from(run_minutes) * 60.0))
        };
        let quality = if figures.total_count == 0 {
            0.0
        } else {
            round4(f64::from(figures.good_count) / f64::from(figures.total_count))
        };
        let mut top_downtime: Vec<Downtime> = figures
            .downtime
            .iter()
            .map(|&(reason, minutes)| Downtime { reason, minutes })
            .collect();
        top_downtime.sort_by_key(|downtime| std::cmp::Reverse(downtime.minutes));
        top_downtime.truncate(3);
        Ok(LineOee {
            line_id: line.id,
            line_name: line.name,
            shift: figures.shift,
            availability,
            performance,
            quality,
            oee: round4(availability * performance * quality),
            planned_minutes: figures.planned_minutes,
            run_minutes,
            good_count: figures.good_count,
            total_count: figures.total_count,
            top_downtime,
        })
    }

    /// Open work orders (seeded, then created) matching the filters.
    pub fn open_work_orders(
        &self,
        line_id: Option<&str>,
        machine_id: Option<&str>,
        priority: Option<&str>,
    ) -> Result<Vec<WorkOrder>, PlantError> {
        if let Some(line_id) = line_id {
            Self::check_line(line_id)?;
        }
        let state = self.lock();
        if let Some(machine_id) = machine_id {
            Self::find_machine(&state.machines, machine_id)?;
        }
        let line_of = |machine_id: &str| {
            state
                .machines
                .iter()
                .find(|machine| machine.id == machine_id)
                .map(|machine| machine.line_id)
        };
        Ok(state
            .work_orders
            .iter()
            .filter(|order| order.status == "open")
            .filter(|order| machine_id.is_none_or(|id| order.machine_id == id))
            .filter(|order| line_id.is_none_or(|id| line_of(&order.machine_id) == Some(id)))
            .filter(|order| priority.is_none_or(|p| order.priority == p))
            .cloned()
            .collect())
    }

    /// Validates and creates an open work order `WO-<next>`.
    pub fn create_work_order(
        &self,
        machine_id: &str,
        title: &str,
        priority: &str,
        description: Option<&str>,
    ) -> Result<WorkOrder, PlantError> {
        let title = title.trim();
        if title.is_empty() {
            return Err(PlantError::EmptyTitle);
        }
        let title_chars = title.chars().count();
        if title_chars > MAX_TITLE_CHARS {
            return Err(PlantError::TitleTooLong(title_chars));
        }
        let description = description.map(str::trim).filter(|text| !text.is_empty());
        if let Some(text) = description {
            let chars = text.chars().count();
            if chars > MAX_DESCRIPTION_CHARS {
                return Err(PlantError::DescriptionTooLong(chars));
            }
        }
        let mut state = self.lock();
        let machine = Self::find_machine(&state.machines, machine_id)?;
        let order = WorkOrder {
            id: format!("WO-{}", state.next_number),
            machine_id: machine.id.to_owned(),
            title: title.to_owned(),
            priority: priority.to_owned(),
            description: description.map(str::to_owned),
            status: "open".to_owned(),
            created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        };
        state.next_number += 1;
        state.work_orders.push(order.clone());
        state.created.push(order.clone());
        Ok(order)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oee_is_the_product_of_its_ratios() {
        let plant = Plant::sample();
        for line in ["L1", "L2", "L3"] {
            for shift in ["A", "B", "C"] {
                let oee = plant.line_oee(line, shift).expect("seeded");
                assert!(oee.performance <= 1.0 && oee.availability <= 1.0, "{oee:?}");
                assert_eq!(oee.oee, round4(oee.availability * oee.performance * oee.quality));
                assert_eq!(oee.top_downtime.len(), 3);
                assert!(oee.top_downtime.windows(2).all(|w| w[0].minutes >= w[1].minutes));
            }
        }
    }

    #[test]
    fn seen_users_skip_consecutive_repeats() {
        let plant = Plant::sample();
        for user in ["a", "a", "b", "a"] {
            plant.record_user(user);
        }
        assert_eq!(plant.seen_users(), ["a", "b", "a"]);
    }

    #[test]
    fn create_validates() {
        let plant = Plant::sample();
        assert_eq!(
            plant.create_work_order("PRESS-01", "  ", "low", None),
            Err(PlantError::EmptyTitle)
        );
        let long = "x".repeat(201);
        assert_eq!(
            plant.create_work_order("PRESS-01", &long, "low", None),
            Err(PlantError::TitleTooLong(201))
        );
        assert!(matches!(
            plant.create_work_order("PRESS-99", "t", "low", None),
            Err(PlantError::UnknownMachine(..))
        ));
        let order = plant.create_work_order("PRESS-01", "t", "low", None).expect("valid");
        assert_eq!(order.id, "WO-1005");
        assert!(plant.created_work_orders().len() == 1);
    }
}
