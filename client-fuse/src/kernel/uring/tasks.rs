//! Requests served on their queue's own thread: each one a stackful coroutine (a *task*)
//! that runs until it has to wait — for a socket to become readable, or for another task
//! to wake it — and is resumed by the queue's loop once that happened. A queue thread so
//! keeps many requests in flight without handing any to another thread: the request
//! comes out of the ring, its engine request goes out, the task waits, the answer comes
//! in through a poll on the same ring, the task finishes and the entry is committed, all
//! on one thread ([`super::UringQueue::run_async`]).
//!
//! Owns the tasks of one queue thread (their coroutines and stacks, reused), what each
//! waits for, and the calls code running in a task makes: [`wait_readable`], [`sleep`],
//! [`park`], [`wake`], [`current`], [`before_wait`]. The loop arms the polls and timers the
//! tasks ask for ([`Tasks::take_waits`]) and resumes the tasks whose wait ended
//! ([`Tasks::wait_done`], [`Tasks::run_woken`]).
//!
//! The rule for code that runs in a task: it waits only through these calls. A blocking
//! system call or lock wait stalls every request of the queue, and a mutex guard (or a
//! `RefCell` borrow) held across a wait can deadlock the thread, for another task of it
//! may want the same mutex. So only requests the file system says cannot wait otherwise
//! run in tasks ([`crate::kernel::Filesystem::may_wait`]); the others go to the worker
//! pool as before.
//!
//! Why stackful coroutines ([`corosensei`]): every operation of the file system is
//! written once, as straight-line code over a blocking-looking transport, for both the
//! `/dev/fuse` workers and the rings; a task suspends inside that code where a worker
//! would block, so nothing is rewritten as a state machine or as `async`.

use std::cell::{Cell, RefCell};
use std::marker::PhantomData;
use std::os::fd::RawFd;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::time::Duration;

use corosensei::stack::DefaultStack;
use corosensei::{Coroutine, CoroutineResult, Yielder};
use io_uring::types::Timespec;

/// `user_data` of a task's poll or timer: this bit, the task's generation above [`SLOT_BITS`] and
/// its slot below (entries use their index, the eventfd `u64::MAX`).
pub(crate) const POLL_TAG: u64 = 1 << 62;
const SLOT_BITS: u32 = 24;
/// A task's stack (virtual memory: only the pages it touches are backed).
const STACK_SIZE: usize = 1 << 20;

/// A task of this thread: its slot and the generation of that slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskId {
    slot: u32,
    generation: u32,
}

/// What a suspended task waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Park {
    /// A [`wake`].
    Woken,
    /// The descriptor to become readable (or to fail).
    Readable(RawFd),
    /// Time to pass.
    Sleep(Duration),
}

/// A wait for the loop to arm on its ring, ended by the completion with its `user_data`.
#[derive(Clone, Copy, Debug)]
pub enum Wait {
    /// `IORING_OP_POLL_ADD` for `POLLIN` on the descriptor.
    Readable(RawFd),
    /// `IORING_OP_TIMEOUT` with this timespec, which stays where it is until the task's
    /// next wait.
    Timer(*const Timespec),
}

impl Wait {
    /// The submission that arms this wait, completed with `user_data`.
    pub fn sqe(self, user_data: u64) -> io_uring::squeue::Entry {
        let e = match self {
            Wait::Readable(fd) => io_uring::opcode::PollAdd::new(io_uring::types::Fd(fd), libc::POLLIN as u32).build(),
            Wait::Timer(ts) => io_uring::opcode::Timeout::new(ts).build(),
        };
        e.user_data(user_data)
    }
}

type TaskYielder = Yielder<(), Park>;
type Task = Coroutine<(), Park, (), DefaultStack>;

thread_local! {
    /// The running task and its yielder (set by the loop around each resume).
    static CURRENT: Cell<Option<(TaskId, *const TaskYielder)>> = const { Cell::new(None) };
    /// Tasks woken by the code that ran, for the loop to resume.
    static WOKEN: RefCell<Vec<TaskId>> = const { RefCell::new(Vec::new()) };
    /// Work deferred until every runnable task has run ([`before_wait`]).
    static BEFORE_WAIT: RefCell<Vec<Box<dyn FnOnce()>>> = const { RefCell::new(Vec::new()) };
}

/// The task this code runs in, if it runs in one.
pub fn current() -> Option<TaskId> {
    CURRENT.with(|c| c.get().map(|(t, _)| t))
}

/// Whether this code runs in a task (and so must wait only through this module).
pub fn in_task() -> bool {
    current().is_some()
}

fn suspend(p: Park) {
    let Some((_, y)) = CURRENT.with(|c| c.get()) else {
        debug_assert!(false, "suspend outside a task");
        return;
    };
    // SAFETY: the yielder lives on this task's own stack (the one this call runs on) for
    // the task's whole life; CURRENT names it only while the task runs.
    unsafe { &*y }.suspend(p);
}

/// Suspends the running task until some code calls [`wake`] with it. Wake-ups may be
/// spurious: callers wait in a loop on their own condition. Outside a task: returns.
pub fn park() {
    suspend(Park::Woken)
}

/// Suspends the running task until `fd` is readable (or has an error or a hang-up).
/// Outside a task: returns.
pub fn wait_readable(fd: RawFd) {
    suspend(Park::Readable(fd))
}

/// Sleeps for `d`: the running task suspended (its queue serves other requests
/// meanwhile), or the thread outside a task.
pub fn sleep(d: Duration) {
    if in_task() { suspend(Park::Sleep(d)) } else { std::thread::sleep(d) }
}

/// Wakes task `t` of this thread (if it is parked; a stale id wakes nothing).
pub fn wake(t: TaskId) {
    WOKEN.with(|w| w.borrow_mut().push(t));
}

/// Runs `f` once every task of this thread that can run has run, before the loop waits
/// (outside any task): what the tasks of one loop turn ask for is done together there —
/// their engine requests leave in one send ([`crate::ringconn`]). `f` may wake tasks.
/// Outside a queue thread's loop nothing runs it: callers use it only from a task.
pub fn before_wait(f: impl FnOnce() + 'static) {
    BEFORE_WAIT.with(|b| b.borrow_mut().push(Box::new(f)));
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Free,
    Running,
    Parked,
    /// Asked for a poll or a timer, not armed yet.
    Wants(Park),
    /// Its poll or timer is armed.
    Waiting,
}

struct Slot {
    task: Option<Task>,
    generation: u32,
    state: State,
    /// The task's yielder, known once it ran.
    yielder: Rc<Cell<*const TaskYielder>>,
    /// The time of its timer, at a fixed address while armed.
    timespec: Box<Timespec>,
}

/// The tasks of one queue thread. `'a`: what the tasks borrow (the file system), which
/// outlives this value; a task still suspended when it is dropped is unwound (its
/// destructors run: an unanswered request is answered EIO).
pub struct Tasks<'a> {
    slots: Vec<Slot>,
    free: Vec<u32>,
    stacks: Vec<DefaultStack>,
    wants: Vec<u32>,
    live: usize,
    started: u64,
    most_live: usize,
    _borrows: PhantomData<&'a ()>,
}

impl Default for Tasks<'_> {
    fn default() -> Self {
        Tasks {
            slots: Vec::new(),
            free: Vec::new(),
            stacks: Vec::new(),
            wants: Vec::new(),
            live: 0,
            started: 0,
            most_live: 0,
            _borrows: PhantomData,
        }
    }
}

impl<'a> Tasks<'a> {
    /// Tasks not finished.
    pub fn live(&self) -> usize {
        self.live
    }

    /// Tasks started so far, and the most that were unfinished at once.
    pub fn counts(&self) -> (u64, usize) {
        (self.started, self.most_live)
    }

    /// Runs `f` as a new task, at once, until it finishes or first waits.
    pub fn spawn(&mut self, f: impl FnOnce() + 'a) -> std::io::Result<()> {
        let stack = match self.stacks.pop() {
            Some(s) => s,
            None => DefaultStack::new(STACK_SIZE)?,
        };
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                let s = u32::try_from(self.slots.len()).ok().filter(|&s| s < 1 << SLOT_BITS);
                let s = s.ok_or_else(|| std::io::Error::other("too many tasks"))?;
                self.slots.push(Slot {
                    task: None,
                    generation: 0,
                    state: State::Free,
                    yielder: Rc::new(Cell::new(std::ptr::null())),
                    timespec: Box::new(Timespec::new()),
                });
                s
            }
        };
        let id = TaskId { slot, generation: self.slots[slot as usize].generation };
        let yielder = self.slots[slot as usize].yielder.clone();
        let body = move |y: &TaskYielder, ()| {
            let yp: *const TaskYielder = y;
            yielder.set(yp);
            CURRENT.with(|c| c.set(Some((id, yp))));
            // A panic ends this request (answered EIO by the reply's drop), not the queue;
            // the unwinding of a task dropped while suspended (end of the connection)
            // passes through here too and ends it the same way.
            if catch_unwind(AssertUnwindSafe(f)).is_err() {
                tracing::debug!("fuse io_uring: a request's task ended by a panic or unwinding");
            }
        };
        // SAFETY: the body borrows only data living for 'a, and the task cannot outlive
        // 'a: it is owned by this value (bounded by 'a) and dropped, so unwound, with it.
        let task = unsafe { Coroutine::with_stack_unchecked(stack, body) };
        let s = &mut self.slots[slot as usize];
        s.task = Some(task);
        s.state = State::Running;
        self.live += 1;
        self.started += 1;
        self.most_live = self.most_live.max(self.live);
        self.resume(slot);
        Ok(())
    }

    fn resume(&mut self, slot: u32) {
        let s = &mut self.slots[slot as usize];
        let Some(task) = s.task.as_mut() else { return };
        let id = TaskId { slot, generation: s.generation };
        s.state = State::Running;
        CURRENT.with(|c| c.set(Some((id, s.yielder.get()))));
        let r = task.resume(());
        CURRENT.with(|c| c.set(None));
        match r {
            CoroutineResult::Yield(Park::Woken) => s.state = State::Parked,
            CoroutineResult::Yield(p) => {
                s.state = State::Wants(p);
                self.wants.push(slot);
            }
            CoroutineResult::Return(()) => {
                if let Some(t) = s.task.take() {
                    self.stacks.push(t.into_stack());
                }
                s.state = State::Free;
                s.generation = s.generation.wrapping_add(1);
                self.free.push(slot);
                self.live -= 1;
            }
        }
    }

    /// The waits to arm, as (`user_data`, what); the tasks count as waiting from now.
    pub fn take_waits(&mut self, out: &mut Vec<(u64, Wait)>) {
        for slot in self.wants.drain(..) {
            let s = &mut self.slots[slot as usize];
            let State::Wants(p) = s.state else { continue };
            let w = match p {
                Park::Readable(fd) => Wait::Readable(fd),
                Park::Sleep(d) => {
                    *s.timespec = Timespec::from(d);
                    Wait::Timer(&*s.timespec)
                }
                Park::Woken => continue,
            };
            s.state = State::Waiting;
            out.push((POLL_TAG | u64::from(s.generation) << SLOT_BITS | u64::from(slot), w));
        }
    }

    /// A poll or timer armed for a task completed: resume the task.
    pub fn wait_done(&mut self, user_data: u64) {
        let slot = (user_data & ((1 << SLOT_BITS) - 1)) as u32;
        let generation = ((user_data & !POLL_TAG) >> SLOT_BITS) as u32;
        match self.slots.get(slot as usize) {
            Some(s) if s.generation == generation && s.state == State::Waiting => self.resume(slot),
            _ => tracing::warn!(user_data, "fuse io_uring: a completion for no waiting task"),
        }
    }

    /// Resumes the tasks woken (by the code that ran since), then runs the work deferred
    /// with [`before_wait`], until no task is woken and nothing is deferred.
    pub fn run_woken(&mut self) {
        loop {
            let woken = WOKEN.with(|w| std::mem::take(&mut *w.borrow_mut()));
            if woken.is_empty() {
                let deferred = BEFORE_WAIT.with(|b| std::mem::take(&mut *b.borrow_mut()));
                if deferred.is_empty() {
                    return;
                }
                deferred.into_iter().for_each(|f| f());
                continue;
            }
            for t in woken {
                let ok = self
                    .slots
                    .get(t.slot as usize)
                    .is_some_and(|s| s.generation == t.generation && s.state == State::Parked);
                if ok {
                    self.resume(t.slot);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parked_task_resumes_when_woken_and_its_stack_is_reused() {
        let log = RefCell::new(Vec::new());
        let parked = Cell::new(None);
        let mut tasks = Tasks::default();
        tasks
            .spawn(|| {
                log.borrow_mut().push("a starts");
                parked.set(current());
                park();
                log.borrow_mut().push("a ends");
            })
            .unwrap();
        assert_eq!(tasks.live(), 1);
        tasks
            .spawn(|| {
                log.borrow_mut().push("b runs");
                wake(parked.get().unwrap());
            })
            .unwrap();
        assert_eq!(*log.borrow(), ["a starts", "b runs"], "a waits until run_woken");
        tasks.run_woken();
        assert_eq!(*log.borrow(), ["a starts", "b runs", "a ends"]);
        assert_eq!(tasks.live(), 0);
        assert_eq!(tasks.counts(), (2, 2));
        assert_eq!(tasks.stacks.len(), 2, "both stacks kept for the next tasks");
        assert!(!in_task(), "no task outside a resume");
    }

    #[test]
    fn deferred_work_runs_once_after_every_runnable_task_and_may_wake_one() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let mut tasks = Tasks::default();
        for name in ["a", "b"] {
            let log = log.clone();
            tasks
                .spawn(move || {
                    let me = current().unwrap();
                    let l = log.clone();
                    // Like a request queued for the loop turn's one send, answered at once.
                    before_wait(move || {
                        l.borrow_mut().push(format!("flush for {name}"));
                        wake(me);
                    });
                    log.borrow_mut().push(format!("{name} queued"));
                    park();
                    log.borrow_mut().push(format!("{name} done"));
                })
                .unwrap();
        }
        assert_eq!(*log.borrow(), ["a queued", "b queued"], "nothing deferred runs inside a spawn");
        tasks.run_woken();
        assert_eq!(*log.borrow(), ["a queued", "b queued", "flush for a", "flush for b", "a done", "b done"]);
        assert_eq!(tasks.live(), 0);
        assert!(BEFORE_WAIT.with(|b| b.borrow().is_empty()));
    }

    #[test]
    fn a_task_waiting_for_a_descriptor_or_time_asks_for_a_poll_or_timer_and_a_stale_completion_is_ignored() {
        let done = Cell::new(false);
        let mut tasks = Tasks::default();
        tasks
            .spawn(|| {
                wait_readable(7);
                done.set(true);
            })
            .unwrap();
        let mut waits = Vec::new();
        tasks.take_waits(&mut waits);
        assert_eq!(waits.len(), 1);
        let (ud, w) = waits[0];
        assert!(matches!(w, Wait::Readable(7)), "{w:?}");
        assert_ne!(ud & POLL_TAG, 0);
        // A wake-up does not end a wait for a descriptor, nor does another generation's poll.
        tasks.wait_done(ud + (1 << SLOT_BITS));
        assert!(!done.get());
        tasks.wait_done(ud);
        assert!(done.get());
        // The slot's next task has another generation: the old completion wakes nothing.
        tasks.spawn(|| sleep(Duration::from_millis(1500))).unwrap();
        tasks.wait_done(ud);
        assert_eq!(tasks.live(), 1);
        // Its sleep is a timer for the loop to arm, with the time asked for.
        tasks.take_waits(&mut waits);
        let Some(&(ud2, Wait::Timer(ts))) = waits.last() else { panic!("{waits:?}") };
        let want = Timespec::from(Duration::from_millis(1500));
        // SAFETY: the timespec lives in the task's slot while the task waits.
        let got = unsafe { &*ts };
        assert_eq!(format!("{got:?}"), format!("{want:?}"));
        tasks.wait_done(ud2);
        assert_eq!(tasks.live(), 0);
    }

    #[test]
    fn dropping_suspended_tasks_runs_their_destructors_and_a_panic_ends_only_its_task() {
        struct Flag<'a>(&'a Cell<u32>);
        impl Drop for Flag<'_> {
            fn drop(&mut self) {
                self.0.set(self.0.get() + 1);
            }
        }
        let dropped = Cell::new(0);
        {
            let mut tasks = Tasks::default();
            tasks
                .spawn(|| {
                    let _f = Flag(&dropped);
                    park();
                })
                .unwrap();
            tasks.spawn(|| panic!("a request's bug")).unwrap();
            assert_eq!(tasks.live(), 1);
        }
        assert_eq!(dropped.get(), 1);
    }
}
