"""CallService: the one entry point the dialer, the IVR and the panel use for outbound calls.

Public API (what other capabilities code against)
-------------------------------------------------

Build it in the composition root and enter it after the AMI client and the bus::

    async with AmiClient(settings.ami) as ami, \
               CallService(db, bus, ami, settings.asterisk) as calls:
        attempt_id = await calls.originate(OriginateRequest(
            phone_e164="+15551230000",
            dial="Local/5551230000@sim-callees",   # or omit: settings.asterisk.trunk_dial_template
            context="contactd-outbound", exten="s", # where the answered call goes
            caller_id='"Acme" <+15550000000>',
            ring_timeout_s=25, detect_machine=True,
            campaign_id=1, lead_id=42, contact_id=7,
            variables={"CONTACTD_FLOW": "survey"},
        ))

`originate()` writes the CallAttempt row (state `dialing`) BEFORE the Originate leaves, then
sends it with ActionID = attempt id, ChannelId (Uniqueid/Linkedid of the call) = attempt id and
the channel variable CONTACTD_ATTEMPT = attempt id. It returns the attempt id once Asterisk
queued the Originate. Errors (contactd.calls.errors / contactd.ami.errors, each with a code):
  - AmiUnavailable ("ami_unavailable"): not connected; nothing was written, dial later.
  - OriginateRejected ("originate_rejected"): Asterisk refused the action; the attempt is
    already ended (outcome FAILED) and CallEnded was published.
  - OriginateUncertain ("originate_uncertain"): the link dropped or the action timed out
    before Asterisk answered; the attempt stays open and reconciliation settles it (resumed
    if the channel exists, else ended LOST). Never re-dial it yourself.

Everything that follows is published on the EventBus (contactd.calls.events), per attempt in
this order, each at most once: CallDialing → CallRinging → CallAnswered(answered_by=human|
machine|unknown) → CallBridged(agent_channel, agent_interface) → CallEnded(outcome, cause,
ring_s, talk_s, answered_by, lost). CallEnded is guaranteed for every attempt that
`originate()` returned or reported uncertain: by the events, or by reconciliation.
The attempt row (contactd.db.models.calls.CallAttempt) follows the same state machine
(contactd.calls.machine) and is updated by the service's writer; read it with
`AttemptRepository(db).get(attempt_id)`.

Other members:
  - `calls.health` → AmiHealth (state connected|reconnecting|down, since) of the link.
  - `calls.in_flight` → number of attempts not yet ended.
  - `calls.channel_of(attempt_id)` → the callee channel name (for Redirect/Hangup), or None.
  - `await calls.hangup(attempt_id)` → hang up an attempt's channel (no-op when gone).
  - `await calls.reconcile()` → settle open attempts against live channels now (the service
    does it by itself after every (re)connect).
  - `calls.ami` → the AmiClient, for the channel/queue actions the IVR and agents need:
    `redirect(channel, context, exten, priority=1, extra_channel=None)`, `hangup(channel,
    cause=16)`, `setvar(channel, name, value)`, `getvar(channel, name)`,
    `queue_add(queue, interface, member_name=None, penalty=0, paused=False)`,
    `queue_remove(queue, interface)`, `queue_pause(interface, paused, queue=None, reason="")`,
    `command(text) -> str`, `core_show_channels() -> list[dict]`, and `events` (the
    EventDispatcher: `events.on("Name", handler)` for raw AMI events, failures logged/counted).
"""
