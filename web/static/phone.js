// The workspace's browser phone (docs/webrtc.md): SIP.js from the npm registry, served by the
// panel. Credentials are minted for this panel session by POST /workspace/phone/credentials
// (never in the page). Registers while the agent is signed in to a campaign; dialer calls are
// answered at once; hang up, mute, hold, keypad (RFC 4733), microphone and speaker choice, an
// input level meter and live jitter/loss/round-trip figures from getStats.
import { Registerer, RegistererState, SessionState, UserAgent, Web } from "/static/vendor/sip.js/index.js";

const box = document.querySelector("[data-phone]");
const $ = (id) => document.getElementById(id);
const label = (name) => box.dataset[`label${name.replace(/(^|-)(\w)/g, (_m, _d, c) => c.toUpperCase())}`];
const regState = $("phone-reg");
const callState = $("phone-call");
const errorBox = $("phone-error");
const audio = $("phone-audio");
const stats = $("phone-stats");
const hangup = $("phone-hangup");
const mute = $("phone-mute");
const hold = $("phone-hold");
const keys = box.querySelectorAll("[data-dtmf]");
const mic = $("phone-mic");
const speaker = $("phone-speaker");
const level = $("phone-level");

const phone = { ua: null, registerer: null, session: null, registered: false, muted: false, held: false,
                stream: null, stats: null, rtpIn: 0, rtpOut: 0 };
window.contactdPhone = phone; // for the tests and the stats post

const fail = (text) => {
  errorBox.textContent = text;
  errorBox.hidden = false;
};

const setCall = (name) => {
  callState.textContent = label(name);
  callState.dataset.state = name;
  const live = name === "talking" || name === "held";
  hangup.disabled = !(live || name === "ringing");
  mute.disabled = hold.disabled = !live;
  for (const key of keys) key.disabled = !live;
};

const setReg = (registered) => {
  phone.registered = registered;
  regState.textContent = label(registered ? "registered" : "unregistered");
  regState.dataset.state = registered ? "registered" : "unregistered";
};

async function microphone() {
  try {
    const constraints = mic.value ? { deviceId: { exact: mic.value } } : true;
    return await navigator.mediaDevices.getUserMedia({ audio: constraints, video: false });
  } catch (err) {
    const name = err && err.name;
    fail(label(name === "NotFoundError" ? "mic-missing" : (name === "NotAllowedError" || name === "SecurityError") ? "mic-refused" : "failed") +
         (name === "NotAllowedError" || name === "NotFoundError" || name === "SecurityError" ? "" : ` ${err}`));
    regState.textContent = label("unregistered");
    regState.dataset.state = "no-microphone";
    throw err;
  }
}

async function listDevices() {
  const devices = await navigator.mediaDevices.enumerateDevices();
  for (const [select, kind] of [[mic, "audioinput"], [speaker, "audiooutput"]]) {
    const current = select.value;
    select.replaceChildren();
    for (const device of devices.filter((d) => d.kind === kind)) {
      const option = new Option(device.label || device.deviceId.slice(0, 8), device.deviceId);
      select.append(option);
    }
    if (current) select.value = current;
  }
  speaker.disabled = typeof audio.setSinkId !== "function";
}

function meter(stream) {
  const context = new AudioContext();
  const analyser = context.createAnalyser();
  analyser.fftSize = 512;
  context.createMediaStreamSource(stream).connect(analyser);
  const data = new Float32Array(analyser.fftSize);
  const tick = () => {
    analyser.getFloatTimeDomainData(data);
    let sum = 0;
    for (const x of data) sum += x * x;
    level.value = Math.min(1, Math.sqrt(sum / data.length) * 4);
    requestAnimationFrame(tick);
  };
  tick();
}

async function readStats() {
  const pc = phone.session && phone.session.sessionDescriptionHandler && phone.session.sessionDescriptionHandler.peerConnection;
  if (!pc) return;
  const report = await pc.getStats();
  let jitter = 0, lost = 0, received = 0, rtt = 0, sent = 0;
  report.forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "audio") {
      jitter = (s.jitter || 0) * 1000; lost = s.packetsLost || 0; received = s.packetsReceived || 0;
    }
    if (s.type === "outbound-rtp" && s.kind === "audio") sent = s.packetsSent || 0;
    if (s.type === "remote-inbound-rtp" && s.kind === "audio" && s.roundTripTime !== undefined) rtt = s.roundTripTime * 1000;
    if (s.type === "candidate-pair" && s.nominated && s.currentRoundTripTime !== undefined && !rtt) rtt = s.currentRoundTripTime * 1000;
  });
  const loss = received + lost > 0 ? (100 * lost) / (received + lost) : 0;
  phone.stats = { jitter_ms: Math.round(jitter), loss_pct: Math.round(loss * 10) / 10, rtt_ms: Math.round(rtt),
                  packets_received: received, packets_sent: sent, packets_lost: lost };
  stats.dataset.packetsReceived = received;
  stats.dataset.packetsSent = sent;
  stats.textContent = label("stats").replace("{jitter}", phone.stats.jitter_ms)
    .replace("{loss}", phone.stats.loss_pct).replace("{rtt}", phone.stats.rtt_ms);
}

// The call's figures go to its interaction; the call may be recorded a moment after the BYE.
function storeQuality(attemptId, figures, tries) {
  fetch("/workspace/phone/quality", {
    method: "POST",
    headers: { "X-CSRF-Token": box.dataset.csrf, "Content-Type": "application/json" },
    body: JSON.stringify({ attempt_id: attemptId, ...figures }),
  }).then((reply) => {
    if (reply.status === 409 && tries > 1) setTimeout(() => storeQuality(attemptId, figures, tries - 1), 500);
    else box.dataset.qualityStored = String(reply.ok);
  }).catch(() => {});
}

function track(session) {
  phone.session = session;
  let timer = 0;
  session.stateChange.addListener((state) => {
    if (state === SessionState.Established) {
      const sdh = session.sessionDescriptionHandler;
      audio.srcObject = sdh.remoteMediaStream;
      audio.play().catch(() => {});
      setCall("talking");
      timer = setInterval(readStats, 1000);
      // When the first RTP packet arrived (bench/webrtc.py: connect -> the agent hears audio).
      const pc = sdh.peerConnection;
      const firstRtp = setInterval(() => {
        const receiver = pc && pc.getReceivers().find((r) => r.track && r.track.kind === "audio");
        if (!phone.session || phone.session !== session) clearInterval(firstRtp);
        else if (receiver && receiver.getSynchronizationSources().length) {
          phone.firstRtpAt = performance.timeOrigin + performance.now();
          phone.calls = (phone.calls || 0) + 1;
          clearInterval(firstRtp);
        }
      }, 5);
    } else if (state === SessionState.Terminated) {
      clearInterval(timer);
      const attempt = document.querySelector("#card input[name=attempt_id]");
      readStats().then(() => { if (attempt && attempt.value && phone.stats) storeQuality(attempt.value, phone.stats, 8); })
        .finally(() => {
        phone.session = null;
        phone.muted = phone.held = false;
        mute.setAttribute("aria-pressed", "false");
        hold.setAttribute("aria-pressed", "false");
        setCall("ended");
      });
    }
  });
}

async function start() {
  const csrf = box.dataset.csrf;
  phone.stream = await microphone();
  await listDevices();
  meter(phone.stream);
  const reply = await fetch("/workspace/phone/credentials", { method: "POST", headers: { "X-CSRF-Token": csrf } });
  if (!reply.ok) {
    const body = await reply.json().catch(() => ({}));
    fail(`${label("failed")} ${body.error || reply.status}`);
    return;
  }
  const creds = await reply.json();
  const ua = new UserAgent({
    uri: UserAgent.makeURI(creds.uri),
    transportOptions: { server: creds.ws_url },
    authorizationUsername: creds.username,
    authorizationPassword: creds.password,
    displayName: creds.display_name,
    logLevel: "warn",
    sessionDescriptionHandlerFactoryOptions: { iceGatheringTimeout: 500 },
    delegate: {
      onInvite(invitation) {
        if (phone.session) { invitation.reject({ statusCode: 486 }); return; }
        track(invitation);
        setCall("ringing");
        // Dialer and click-to-call calls are answered at once: the agent is waiting for them.
        const audioConstraints = mic.value ? { deviceId: { exact: mic.value } } : true;
        invitation.accept({ sessionDescriptionHandlerOptions: { constraints: { audio: audioConstraints, video: false } } })
          .catch((err) => fail(`${label("failed")} ${err}`));
      },
      onDisconnect() { setReg(false); },
    },
  });
  phone.ua = ua;
  await ua.start();
  const registerer = new Registerer(ua, { expires: 120 });
  phone.registerer = registerer;
  registerer.stateChange.addListener((state) => setReg(state === RegistererState.Registered));
  await registerer.register();
}

hangup.addEventListener("click", () => {
  const s = phone.session;
  if (!s) return;
  if (s.state === SessionState.Established) s.bye();
  else if (s.state === SessionState.Initial || s.state === SessionState.Establishing) s.reject ? s.reject() : s.cancel();
});
mute.addEventListener("click", () => {
  phone.muted = !phone.muted;
  phone.session.sessionDescriptionHandler.enableSenderTracks(!phone.muted && !phone.held);
  mute.setAttribute("aria-pressed", String(phone.muted));
});
hold.addEventListener("click", () => {
  phone.held = !phone.held;
  const modifiers = phone.held ? [Web.holdModifier] : [];
  phone.session.invite({ sessionDescriptionHandlerModifiers: modifiers })
    .then(() => {
      phone.session.sessionDescriptionHandler.enableSenderTracks(!phone.held && !phone.muted);
      hold.setAttribute("aria-pressed", String(phone.held));
      setCall(phone.held ? "held" : "talking");
    }).catch((err) => fail(`${label("failed")} ${err}`));
});
for (const key of keys) {
  key.addEventListener("click", () => {
    const pc = phone.session && phone.session.sessionDescriptionHandler.peerConnection;
    const sender = pc && pc.getSenders().find((x) => x.dtmf && x.track && x.track.kind === "audio");
    // Appended to what is still queued: insertDTMF alone replaces it (fast presses were lost).
    if (sender) sender.dtmf.insertDTMF(sender.dtmf.toneBuffer + key.dataset.dtmf, 100, 70);
  });
}
speaker.addEventListener("change", () => {
  if (typeof audio.setSinkId === "function") audio.setSinkId(speaker.value).catch((err) => fail(String(err)));
});
mic.addEventListener("change", async () => {
  const stream = await microphone();
  phone.stream = stream;
  meter(stream);
  const pc = phone.session && phone.session.sessionDescriptionHandler && phone.session.sessionDescriptionHandler.peerConnection;
  if (pc) {
    for (const sender of pc.getSenders()) if (sender.track && sender.track.kind === "audio") await sender.replaceTrack(stream.getAudioTracks()[0]);
  }
});
// A workspace form posts in place, without leaving the page, while this phone is in a call
// (a reload would take the call's audio and buttons away while Asterisk keeps it up) and for
// "Call a number" (a reload would drop the registration just as Asterisk rings this phone
// first). The answer is said where the page says it after a reload. Without this file every
// form still posts as a plain form.
const dialForm = document.querySelector("form[action='/workspace/call']");
const sayAnswer = (reply) => {
  const back = new URL(reply.url).searchParams;
  const error = back.get("error") || (reply.ok ? "" : `${label("failed")} ${reply.status}`);
  for (const old of document.querySelectorAll("h1 ~ p.ok[role=status], h1 ~ p.error[role=alert]")) old.remove();
  const said = document.createElement("p");
  said.className = error ? "error" : "ok";
  said.setAttribute("role", error ? "alert" : "status");
  said.textContent = error || back.get("message") || "";
  document.querySelector("main h1").after(said);
};
document.addEventListener("submit", async (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || form.method.toLowerCase() !== "post") return;
  if (!new URL(form.action).pathname.startsWith("/workspace/")) return;
  if (!phone.session && form !== dialForm) return;
  event.preventDefault();
  const reply = await fetch(form.action, { method: "POST", body: new FormData(form, event.submitter) });
  sayAnswer(reply);
});
window.addEventListener("pagehide", () => {
  if (phone.registerer && phone.registered) phone.registerer.unregister().catch(() => {});
});

setCall("idle");
start().catch((err) => {
  if (!errorBox.hidden) return;
  fail(`${label("failed")} ${err}`);
});
