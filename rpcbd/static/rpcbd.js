/*
 * rpcbd.js: a small JSON-RPC 2.0 client for the browser, over one WebSocket.
 *
 * No dependencies. Bi-directional like rpcbd: the page calls Python, and Python calls
 * functions the page registered.
 *
 *   <script src="/rpcbd.js"></script>
 *   <script>
 *     rpcbd.connect().then(async (rpc) => {           // same host, endpoint from
 *       rpc.register("page.alert", (text) => alert(text));  // <meta name="rpcbd-endpoint">
 *       console.log(await rpc.call("echo", ["hi"]));
 *       rpc.notify("log", {level: "info", text: "page ready"});
 *       const [a, b] = await rpc.batch().call("echo", [1]).call("echo", [2]).send();
 *     });
 *   </script>
 *
 * API:
 *   rpcbd.connect(url?, options?) -> Promise<Client>   opens the WebSocket first
 *   new rpcbd.Client(url?, options?)                   options: {timeout: ms}
 *   client.ready -> Promise<Client>                    resolves once open
 *   client.call(method, params?, {timeout}?) -> Promise   params: array, object or omitted
 *   client.notify(method, params?)
 *   client.batch() -> Batch; batch.call(m, p).notify(m, p).send() -> Promise<array>
 *      (one entry per call, in order: its result, or an RpcError instance)
 *   client.register(name, fn)    fn(...params) for arrays, fn(params) for objects; may
 *                                return a Promise (async functions work); a thrown
 *                                RpcError keeps its code, anything else is -32603
 *   client.unregister(name)
 *   client.close()
 *   client.onclose = (event) => {}                     after the socket closed
 *   rpcbd.RpcError(code, message, data)                what failed calls reject with
 *
 * Closing (either side) rejects every call in flight with an RpcError of code -32099.
 * The server's "$/cancelRequest" notifications are accepted and ignored (handlers here
 * run to completion).
 */
(function (root, factory) {
  "use strict";
  const api = factory();
  if (typeof module === "object" && module.exports) {
    module.exports = api;
  } else {
    root.rpcbd = api;
  }
})(typeof self !== "undefined" ? self : this, function () {
  "use strict";

  const METHOD_NOT_FOUND = -32601;
  const INVALID_REQUEST = -32600;
  const PARSE_ERROR = -32700;
  const INTERNAL_ERROR = -32603;
  /** Used locally for calls that fail because the connection closed or timed out. */
  const CONNECTION_CLOSED = -32099;

  class RpcError extends Error {
    constructor(code, message, data) {
      super(message);
      this.name = "RpcError";
      this.code = code;
      if (data !== undefined) this.data = data;
    }
    toJSON() {
      const error = { code: this.code, message: this.message };
      if (this.data !== undefined) error.data = this.data;
      return error;
    }
  }

  function defaultUrl() {
    if (typeof location === "undefined") throw new Error("rpcbd: give the WebSocket URL");
    const meta = typeof document !== "undefined"
      ? document.querySelector('meta[name="rpcbd-endpoint"]') : null;
    const path = meta ? meta.getAttribute("content") : "/";
    if (/^wss?:/.test(path)) return path;
    return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + path;
  }

  function toError(value) {
    if (value instanceof RpcError) return value.toJSON();
    if (value && typeof value.code === "number" && typeof value.message === "string") {
      return { code: value.code, message: value.message, data: value.data };
    }
    // Like rpcbd: the details of an unexpected failure stay local.
    if (typeof console !== "undefined") console.error("rpcbd: handler failed", value);
    return { code: INTERNAL_ERROR, message: "Internal error" };
  }

  class Client {
    constructor(url, options) {
      this.url = url || defaultUrl();
      this.options = options || {};
      this.onclose = null;
      this._nextId = 1;
      this._pending = new Map();
      this._handlers = new Map();
      this._closed = false;
      this._socket = new WebSocket(this.url);
      this.ready = new Promise((resolve, reject) => {
        this._socket.addEventListener("open", () => resolve(this));
        this._socket.addEventListener("close", (event) => {
          reject(new RpcError(CONNECTION_CLOSED, "WebSocket closed (" + event.code + ")"));
        });
      });
      this.ready.catch(() => {}); // a caller that never awaits it must not see a warning
      this._socket.addEventListener("message", (event) => this._receive(event.data));
      this._socket.addEventListener("close", (event) => this._closedBy(event));
    }

    call(method, params, options) {
      const id = this._nextId++;
      const message = { jsonrpc: "2.0", id: id, method: method };
      if (params !== undefined) message.params = params;
      return new Promise((resolve, reject) => {
        const entry = { resolve: resolve, reject: reject, timer: null };
        const timeout = (options && options.timeout) || this.options.timeout;
        if (timeout) {
          entry.timer = setTimeout(() => {
            if (!this._pending.delete(id)) return;
            this._sendNow({ jsonrpc: "2.0", method: "$/cancelRequest", params: { id: id } });
            reject(new RpcError(CONNECTION_CLOSED, "no reply to " + method + " within " + timeout + " ms"));
          }, timeout);
        }
        this._pending.set(id, entry);
        this._send(message, reject);
      });
    }

    notify(method, params) {
      const message = { jsonrpc: "2.0", method: method };
      if (params !== undefined) message.params = params;
      this._send(message, (error) => { throw error; });
    }

    batch() {
      return new Batch(this);
    }

    register(name, fn) {
      if (typeof fn !== "function") throw new TypeError("register(name, fn): fn must be a function");
      this._handlers.set(name, fn);
      return this;
    }

    unregister(name) {
      this._handlers.delete(name);
      return this;
    }

    close() {
      this._socket.close(1000);
    }

    get closed() {
      return this._closed;
    }

    _send(message, fail) {
      if (this._closed) {
        fail(new RpcError(CONNECTION_CLOSED, "connection closed"));
        return;
      }
      if (this._socket.readyState === WebSocket.CONNECTING) {
        this.ready.then(() => this._sendNow(message), fail);
      } else {
        this._sendNow(message);
      }
    }

    _sendNow(message) {
      if (this._socket.readyState === WebSocket.OPEN) this._socket.send(JSON.stringify(message));
    }

    async _receive(data) {
      if (typeof data !== "string") data = await new Response(data).text(); // binary frame
      let message;
      try {
        message = JSON.parse(data);
      } catch (error) {
        this._sendNow({ jsonrpc: "2.0", id: null, error: { code: PARSE_ERROR, message: "Parse error" } });
        return;
      }
      if (Array.isArray(message)) {
        if (message.length === 0) {
          this._sendNow({ jsonrpc: "2.0", id: null, error: { code: INVALID_REQUEST, message: "Invalid Request" } });
          return;
        }
        const replies = (await Promise.all(message.map((item) => this._handle(item))))
          .filter((reply) => reply !== null);
        if (replies.length) this._sendNow(replies);
        return;
      }
      const reply = await this._handle(message);
      if (reply !== null) this._sendNow(reply);
    }

    /** One incoming message; returns the reply to send, or null. */
    async _handle(message) {
      if (message === null || typeof message !== "object") {
        return { jsonrpc: "2.0", id: null, error: { code: INVALID_REQUEST, message: "Invalid Request" } };
      }
      if (typeof message.method !== "string") {
        this._settle(message);
        return null;
      }
      const isRequest = "id" in message;
      const fn = this._handlers.get(message.method);
      if (fn === undefined) {
        if (!isRequest) return null; // unknown notifications ($/cancelRequest, ...) are ignored
        return { jsonrpc: "2.0", id: message.id,
          error: { code: METHOD_NOT_FOUND, message: "Method not found", data: message.method } };
      }
      try {
        const params = message.params;
        const args = Array.isArray(params) ? params : params === undefined ? [] : [params];
        let result = await fn.apply(null, args);
        if (result === undefined) result = null;
        return isRequest ? { jsonrpc: "2.0", id: message.id, result: result } : null;
      } catch (error) {
        const reply = toError(error);
        return isRequest ? { jsonrpc: "2.0", id: message.id, error: reply } : null;
      }
    }

    /** A reply from Python: settle the matching call. */
    _settle(message) {
      const entry = this._pending.get(message.id);
      if (entry === undefined) return; // late reply to a call that timed out
      this._pending.delete(message.id);
      if (entry.timer !== null) clearTimeout(entry.timer);
      if (message.error) {
        const error = message.error;
        entry.reject(new RpcError(error.code, error.message, error.data));
      } else {
        entry.resolve(message.result);
      }
    }

    _closedBy(event) {
      this._closed = true;
      const error = new RpcError(CONNECTION_CLOSED, "connection closed (" + event.code + ")");
      for (const entry of this._pending.values()) {
        if (entry.timer !== null) clearTimeout(entry.timer);
        entry.reject(error);
      }
      this._pending.clear();
      if (typeof this.onclose === "function") this.onclose(event);
    }
  }

  class Batch {
    constructor(client) {
      this._client = client;
      this._items = [];
    }

    call(method, params) {
      this._items.push({ method: method, params: params, request: true });
      return this;
    }

    notify(method, params) {
      this._items.push({ method: method, params: params, request: false });
      return this;
    }

    /** Send as one JSON-RPC batch; resolves to one entry per call (result or RpcError). */
    send() {
      const client = this._client;
      const messages = [];
      const waits = [];
      for (const item of this._items) {
        const message = { jsonrpc: "2.0", method: item.method };
        if (item.params !== undefined) message.params = item.params;
        if (item.request) {
          const id = client._nextId++;
          message.id = id;
          waits.push(new Promise((resolve) => {
            client._pending.set(id, { resolve: resolve, reject: resolve, timer: null });
          }));
        }
        messages.push(message);
      }
      this._items = [];
      if (messages.length === 0) return Promise.resolve([]);
      client._send(messages, (error) => {
        for (const message of messages) {
          const entry = client._pending.get(message.id);
          if (entry !== undefined) {
            client._pending.delete(message.id);
            entry.resolve(error);
          }
        }
      });
      return Promise.all(waits);
    }
  }

  function connect(url, options) {
    return new Client(url, options).ready;
  }

  return { Client: Client, Batch: Batch, RpcError: RpcError, connect: connect, CONNECTION_CLOSED: CONNECTION_CLOSED };
});
