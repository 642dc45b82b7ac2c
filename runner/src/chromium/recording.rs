//! Recording a session's page with rrweb (`vendor/rrweb`, pinned): the recorder is injected into
//! every document of the page before its scripts run, in an isolated world of its own — the page
//! can neither see nor call it, nor the binding that carries its events out. Batches of events
//! arrive as `Runtime.bindingCalled` and go to the session's [`RecordingSink`]. Password inputs
//! and elements marked `data-ds-mask` are masked; `mask_all_inputs` masks every input.

use std::sync::{Arc, Mutex};

use chromiumoxide::cdp::{
    browser_protocol::page::AddScriptToEvaluateOnNewDocumentParams,
    js_protocol::runtime::{
        AddBindingParams, EvaluateParams, EventBindingCalled, EventExecutionContextCreated,
        ExecutionContextId,
    },
};
use futures::StreamExt;

use super::{SessionPage, internal};
use crate::{recording::RecordingSink, spec::RunnerError};

const RECORDER: &str = include_str!("../../../vendor/rrweb/record-2.1.6.min.js");
/// The isolated world the recorder runs in.
const WORLD: &str = "driftstack-recorder";
/// The binding, present in that world only.
const BINDING: &str = "__driftstackRecord";

/// How a session is recorded.
#[derive(Clone, Copy, Debug, Default)]
pub struct RecordOptions {
    pub mask_all_inputs: bool,
}

/// Starts the recorder in the top document (same-origin frames are recorded from it; other
/// frames are not).
///
/// rrweb looks for prototypes untouched by the page, and creates a hidden `<iframe>` in the
/// page to borrow them from when `Element.prototype.querySelector` is not a native *getter* (it
/// never is: it is a method — rrweb 2.1.6 lists it with the accessors). In this isolated world
/// every prototype is the browser's own, so the two methods are given native (bound) getters
/// returning themselves, on this world's prototype only: no iframe is created, which would make
/// every page's `load` wait for it and load the recorder a second time.
fn bootstrap(options: RecordOptions) -> String {
    format!(
        r#";(function () {{
  if (window !== window.top) return;
  var proto = Element.prototype;
  ['querySelector', 'querySelectorAll'].forEach(function (name) {{
    var method = proto[name];
    Object.defineProperty(proto, name, {{
      configurable: true,
      get: function () {{ return method; }}.bind(null),
    }});
  }});
}})();
{RECORDER}
;(function () {{
  if (window !== window.top || window.__driftstackRecording) return;
  var send = window.{BINDING};
  if (typeof send !== 'function' || typeof rrwebRecord === 'undefined') return;
  window.__driftstackRecording = true;
  // Events are sent once per task (a microtask after the last), not by a timer: timers of a
  // page nobody looks at may not run.
  var buffer = [], queued = false;
  function flush() {{
    queued = false;
    if (buffer.length) {{ var batch = buffer; buffer = []; send(JSON.stringify(batch)); }}
  }}
  var masked = '[data-ds-mask]';
  rrwebRecord.record({{
    emit: function (event) {{
      buffer.push(event);
      if (buffer.length >= 100) flush();
      else if (!queued) {{ queued = true; Promise.resolve().then(flush); }}
    }},
    maskAllInputs: {mask_all},
    maskInputOptions: {{ password: true }},
    maskTextSelector: masked,
    blockSelector: 'input' + masked + ', textarea' + masked + ', select' + masked,
  }});
  addEventListener('pagehide', flush);
  window.__driftstackSnapshot = function () {{ rrwebRecord.record.takeFullSnapshot(true); flush(); }};
}})();"#,
        mask_all = options.mask_all_inputs,
    )
}

impl SessionPage {
    /// Injects the recorder into the page's documents from now on, and follows its events into
    /// `sink`.
    pub async fn start_recording(
        &mut self,
        sink: RecordingSink,
        options: RecordOptions,
    ) -> Result<(), RunnerError> {
        let mut calls = self
            .page
            .event_listener::<EventBindingCalled>()
            .await
            .map_err(internal("binding listener"))?;
        let mut contexts = self
            .page
            .event_listener::<EventExecutionContextCreated>()
            .await
            .map_err(internal("context listener"))?;
        let world: Arc<Mutex<Option<ExecutionContextId>>> = Arc::default();
        let main_frame = self.page.target_id().inner().clone();
        let ours = world.clone();
        self.tasks.push(tokio::spawn(async move {
            loop {
                // A world's creation is seen before the calls made from it.
                tokio::select! {
                    biased;
                    Some(ev) = contexts.next() => {
                        let frame = ev.context.aux_data.as_ref().and_then(|a| a["frameId"].as_str());
                        if ev.context.name == WORLD && frame == Some(main_frame.as_str())
                            && let Ok(mut w) = ours.lock()
                        {
                            *w = Some(ev.context.id);
                        }
                    }
                    Some(ev) = calls.next() => {
                        // Only the recorder's world of the top document may add events.
                        let from_ours = ours.lock().ok().and_then(|w| *w) == Some(ev.execution_context_id);
                        if ev.name == BINDING && from_ours {
                            sink.send(ev.payload.clone());
                        }
                    }
                    else => break,
                }
            }
        }));
        let binding = AddBindingParams {
            name: BINDING.to_owned(),
            execution_context_name: Some(WORLD.to_owned()),
        };
        // The binding is named by world, so the two can be sent together (the Page domain,
        // which scripts for new documents need, is on in every page).
        let script = AddScriptToEvaluateOnNewDocumentParams {
            source: bootstrap(options),
            world_name: Some(WORLD.to_owned()),
            include_command_line_api: None,
            run_immediately: None,
        };
        let (binding, script) =
            futures::future::join(self.page.execute(binding), self.page.execute(script)).await;
        binding.map_err(internal("Runtime.addBinding"))?;
        script.map_err(internal("Page.addScriptToEvaluateOnNewDocument"))?;
        self.recorder_world = world;
        Ok(())
    }

    /// Asks the recorder for a full snapshot of the current document (after a pause, so that
    /// the replay shows the page as it is now).
    pub async fn recorder_snapshot(&self) -> Result<(), RunnerError> {
        let context = self.recorder_world.lock().ok().and_then(|w| *w);
        let Some(context) = context else {
            return Ok(());
        };
        let mut eval =
            EvaluateParams::new("window.__driftstackSnapshot && window.__driftstackSnapshot()");
        eval.context_id = Some(context);
        self.page
            .execute(eval)
            .await
            .map_err(internal("recorder snapshot"))?;
        Ok(())
    }
}
