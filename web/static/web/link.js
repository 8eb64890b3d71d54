// The WebSocket link (protocol v1): sign-in by the session cookie, `sync` from the last seq
// held of each room after every (re)connect, pings against the heartbeat, and a reconnect with
// growing, jittered waits. Its state is one of connecting, live, reconnecting, offline,
// signed-out and stopped; listeners get each server frame by its type.

const CLOSE_SIGNED_OUT = 4401;

export class Link {
  constructor({ cursors, onFrame, onState }) {
    this.cursors = cursors; // () => ({ "<room id>": last seq held, ... })
    this.onFrame = onFrame;
    this.onState = onState;
    this.socket = null;
    this.state = "connecting";
    this.attempt = 0;
    this.timer = null;
    this.pinger = null;
    this.stopped = false;
    this.heard = Date.now();
    window.addEventListener("offline", () => this.goOffline());
    window.addEventListener("online", () => this.connectSoon(0));
  }

  get live() {
    return this.state === "live" && this.socket && this.socket.readyState === WebSocket.OPEN;
  }

  setState(state, detail = "") {
    this.state = state;
    this.onState(state, detail);
  }

  connect() {
    if (this.stopped || this.socket) return;
    if (!navigator.onLine) {
      this.setState("offline");
      return;
    }
    this.setState(this.attempt ? "reconnecting" : "connecting");
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const socket = new WebSocket(`${scheme}${location.host}/ws/v1/`);
    this.socket = socket;
    socket.addEventListener("message", (event) => this.receive(event.data));
    socket.addEventListener("close", (event) => this.closed(socket, event.code));
  }

  receive(data) {
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return;
    }
    this.heard = Date.now();
    if (frame.type === "hello") {
      // Ping well inside the heartbeat; a link that answers nothing for two rounds is dead
      // even if the socket looks open (a half-open TCP connection): close it and come back.
      const every = Math.max(5, (frame.heartbeat_s || 25) - 5) * 1000;
      clearInterval(this.pinger);
      this.pinger = setInterval(() => {
        if (Date.now() - this.heard > 2 * every + 5000 && this.socket) {
          this.socket.close();
          return;
        }
        this.send({ type: "ping", ref: "alive" });
      }, every);
      this.onFrame(frame); // the page updates its rooms before it says what it holds
      this.send({ type: "sync", rooms: this.cursors(), ref: "sync" });
      return;
    }
    if (frame.type === "synced" && frame.ref === "sync") {
      this.attempt = 0;
      this.setState("live");
    }
    this.onFrame(frame);
  }

  send(frame) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) {
      this.socket.send(JSON.stringify(frame));
      return true;
    }
    return false;
  }

  closed(socket, code) {
    if (this.socket !== socket) return;
    this.socket = null;
    clearInterval(this.pinger);
    if (this.stopped) return;
    if (code === CLOSE_SIGNED_OUT) {
      this.stopped = true;
      this.setState("signed-out");
      return;
    }
    if (code >= 4500 && code <= 4999) {
      this.stopped = true; // the server says: do not come back (4509: account disabled)
      this.setState("stopped", code === 4509 ? "This account is disabled." : `Closed (${code}).`);
      return;
    }
    if (!navigator.onLine) {
      this.setState("offline");
      return;
    }
    this.attempt += 1;
    const wait = Math.min(30000, 500 * 2 ** Math.min(this.attempt - 1, 6));
    this.connectSoon(wait / 2 + Math.random() * (wait / 2));
  }

  connectSoon(delay) {
    if (this.stopped || this.socket) return; // connected already, or told to stay away
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), delay);
    if (this.state !== "offline") this.setState("reconnecting");
  }

  goOffline() {
    this.attempt = Math.max(this.attempt, 1);
    this.setState("offline");
    if (this.socket) {
      const socket = this.socket;
      this.socket = null;
      clearInterval(this.pinger);
      socket.close();
    }
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.pinger);
    if (this.socket) this.socket.close();
  }
}
