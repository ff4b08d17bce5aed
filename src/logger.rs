//! The logger bridge: delivers the core's log records to the application's logger object on
//! the JavaScript thread.

use std::sync::Arc;

use napi::bindgen_prelude::JsObjectValue;
use napi::bindgen_prelude::{FnArgs, Function, Object, Unknown};
use napi::threadsafe_function::{
    ThreadsafeCallContext, ThreadsafeFunction, ThreadsafeFunctionCallMode, UnknownReturnValue,
};
use napi::{sys, Env, Result, Status, ValueType};
use tokio::sync::watch;

use crate::core::log::{Level, LogRecord, LogSink, Value};

/// The four methods a logger must have, indexed by [`method_index`].
pub const METHODS: [&str; 4] = ["debug", "info", "warn", "error"];

/// A record on its way to the JavaScript thread. Dropping it, delivered or not, counts it as
/// done, so `flush` cannot wait for a record the runtime discarded at exit.
struct Delivery {
    record: LogRecord,
    _pending: PendingGuard,
}

struct PendingGuard(Arc<watch::Sender<usize>>);

impl PendingGuard {
    fn new(counter: &Arc<watch::Sender<usize>>) -> Self {
        counter.send_modify(|pending| *pending += 1);
        Self(Arc::clone(counter))
    }
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        self.0.send_modify(|pending| *pending -= 1);
    }
}

type DispatchArgs = FnArgs<(u32, String, serde_json::Value)>;

/// A [`LogSink`] that calls `logger.info(message, context)` (and `debug`, `warn`, `error`) on
/// the JavaScript thread, with `this` bound to the logger object. The method is looked up at
/// each call, as `this.logger.info(...)` would be, so a method replaced or spied on after
/// construction is the one called.
///
/// All records go through one weak ThreadsafeFunction: one queue keeps them in order, and a weak
/// function does not keep the process alive. A logger that throws is ignored; the exception does
/// not reach the host process.
pub struct JsLogger {
    queue: ThreadsafeFunction<Delivery, (), DispatchArgs, Status, false, true>,
    pending: Arc<watch::Sender<usize>>,
}

impl JsLogger {
    /// Builds the bridge for `logger`. The caller has checked that its four methods are
    /// functions.
    pub fn new(env: &Env, logger: &Object) -> Result<Self> {
        // The dispatcher runs with `this` bound to the logger, so the ThreadsafeFunction keeps
        // the logger alive through an ordinary JavaScript reference.
        let dispatcher: Function<DispatchArgs, ()> =
            env.create_function_from_closure("forumAgentLog", |call| {
                dispatch(
                    call.env,
                    call.this()?,
                    call.get(0)?,
                    call.get(1)?,
                    call.get(2)?,
                );
                Ok(())
            })?;
        let queue = dispatcher
            .bind(logger)?
            .build_threadsafe_function::<Delivery>()
            .weak::<true>()
            .callee_handled::<false>()
            .build_callback(|call: ThreadsafeCallContext<Delivery>| {
                let record = call.value.record;
                Ok(FnArgs::from((
                    method_index(record.level) as u32,
                    record.message.to_owned(),
                    context_object(&record),
                )))
            })?;

        Ok(Self {
            queue,
            pending: Arc::new(watch::Sender::new(0)),
        })
    }

    /// Waits until every record sent so far has been handed to the logger (or dropped because
    /// the runtime is shutting down).
    pub async fn flush(&self) {
        let mut pending = self.pending.subscribe();
        // The sender lives as long as `self`, so the wait cannot fail.
        let _ = pending.wait_for(|pending| *pending == 0).await;
    }
}

impl LogSink for JsLogger {
    fn log(&self, record: LogRecord) {
        let delivery = Delivery {
            record,
            _pending: PendingGuard::new(&self.pending),
        };
        // A failed call (the environment is closing) drops the delivery, which settles its count.
        let _ = self
            .queue
            .call(delivery, ThreadsafeFunctionCallMode::NonBlocking);
    }
}

fn method_index(level: Level) -> usize {
    match level {
        Level::Debug => 0,
        Level::Info => 1,
        Level::Warn => 2,
        Level::Error => 3,
    }
}

fn context_object(record: &LogRecord) -> serde_json::Value {
    let context = record
        .context
        .iter()
        .map(|(key, value)| {
            let value = match value {
                Value::Str(text) => serde_json::Value::from(text.as_str()),
                Value::Int(number) => serde_json::Value::from(*number),
            };
            ((*key).to_owned(), value)
        })
        .collect::<serde_json::Map<_, _>>();
    serde_json::Value::Object(context)
}

/// Calls `logger[METHODS[level]](message, context)` on the JavaScript thread and discards
/// whatever it throws. A method that is no longer a function is skipped.
fn dispatch(env: &Env, logger: Object, level: u32, message: Unknown, context: Unknown) {
    let name = METHODS[(level as usize).min(METHODS.len() - 1)];
    if let Ok(method) = logger.get_named_property::<Unknown>(name) {
        if method.get_type().ok() == Some(ValueType::Function) {
            // SAFETY: the value was just checked to be a function.
            let method: Result<Function<FnArgs<(Unknown, Unknown)>, UnknownReturnValue>> =
                unsafe { method.cast() };
            if let Ok(method) = method {
                let _ = method.apply(logger, FnArgs::from((message, context)));
            }
        }
    }

    // A throwing logger, or a throwing getter for the method, leaves an exception pending. It
    // must not reach the ThreadsafeFunction, because that would end the process.
    clear_pending_exception(env);
}

fn clear_pending_exception(env: &Env) {
    let mut pending = false;
    // SAFETY: `env` is the live environment of the JavaScript thread this callback runs on.
    unsafe {
        if sys::napi_is_exception_pending(env.raw(), &mut pending) == sys::Status::napi_ok
            && pending
        {
            let mut exception = std::ptr::null_mut();
            sys::napi_get_and_clear_last_exception(env.raw(), &mut exception);
        }
    }
}
