// bastion.js: the merchant page's handle on the hosted card fields. The fields live in an
// iframe on the vault's origin; this script only ever sees a token and what a token shows
// (brand, last 4, expiry, funding), never the card number or the security code.
//
//   const bastion = Bastion("pk_test_...");
//   const card = bastion.mountCard("#card-element", { onChange(state) { ... } });
//   await card.ready;   // rejects with code "origin_not_allowed" if the vault refused the page
//   const { token } = await card.tokenize();
//
// The one global is `Bastion`.
(() => {
  "use strict";

  const TOKENIZE_TIMEOUT_MS = 30000;
  // How long the fields may take to say they are ready once their iframe has loaded. They say so
  // as their page finishes loading, so a loaded frame that stays silent holds the browser's
  // error page: most often its refusal to frame the vault for an origin the merchant did not
  // register (else an unknown key, or a vault that could not be reached).
  const FRAME_READY_TIMEOUT_MS = 5000;
  const FRAME_HEIGHT_INITIAL_PX = 260;
  const FRAME_HEIGHT_MAX_PX = 2000;

  // Read now: document.currentScript is only set while this script first runs.
  const scriptSource = document.currentScript && document.currentScript.src ? document.currentScript.src : null;

  class BastionError extends Error {
    constructor(message, { code = null, param = null, type = null, requestId = null } = {}) {
      super(message);
      this.name = "BastionError";
      this.code = code;
      this.param = param;
      this.type = type;
      this.requestId = requestId;
    }
  }

  function originOf(url, what) {
    let parsed;
    try {
      parsed = new URL(url, document.baseURI);
    } catch {
      throw new TypeError(`Bastion: ${what} is not a URL.`);
    }
    if (parsed.protocol !== "https:" && parsed.protocol !== "http:") {
      throw new TypeError(`Bastion: ${what} must be an http(s) URL.`);
    }
    return parsed.origin;
  }

  function requestId() {
    const bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return `req_${Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("")}`;
  }

  const isObject = (value) => typeof value === "object" && value !== null;
  const text = (value) => (typeof value === "string" ? value : null);

  function mountCard(publishableKey, vaultOrigin, target, options) {
    const container = typeof target === "string" ? document.querySelector(target) : target;
    if (!(container instanceof Element)) {
      throw new TypeError("Bastion: mountCard() needs an element or a selector that finds one.");
    }
    const onChange = options.onChange ?? null;
    if (onChange !== null && typeof onChange !== "function") {
      throw new TypeError("Bastion: options.onChange must be a function.");
    }
    if (window.location.origin === "null") {
      throw new Error("Bastion: the card fields need a page served over http(s).");
    }

    const iframe = document.createElement("iframe");
    iframe.src =
      `${vaultOrigin}/v1/elements/card?key=${encodeURIComponent(publishableKey)}` +
      `&origin=${encodeURIComponent(window.location.origin)}`;
    iframe.title = "Secure card payment input";
    iframe.className = "bastion-card-frame";
    // Scripts and its own origin (for fetch to the vault) only: no forms, popups or navigation.
    iframe.setAttribute("sandbox", "allow-scripts allow-same-origin");
    // CSSOM from script, which a style-src CSP allows (unlike style attributes in markup).
    iframe.style.display = "block";
    iframe.style.width = "100%";
    iframe.style.border = "0";
    iframe.style.height = `${FRAME_HEIGHT_INITIAL_PX}px`;

    let destroyed = false;
    let pending = null; // at most one tokenize() at a time: { id, resolve, reject, timer }
    let markReady;
    let markNotAllowed;
    const ready = new Promise((resolve, reject) => {
      markReady = resolve;
      markNotAllowed = reject;
    });
    let readyTimer = null;

    // Starts once the frame has loaded, whatever it holds (the fields or the browser's error page),
    // so that a slow network is not mistaken for a refusal.
    function onFrameLoad() {
      iframe.removeEventListener("load", onFrameLoad);
      readyTimer = setTimeout(() => {
        const origin = window.location.origin;
        markNotAllowed(
          new BastionError(
            `The card fields did not load: ${vaultOrigin} refused to be framed by ${origin}, or could not ` +
              `be reached. Register this page's origin for the merchant with: ` +
              `bastion merchant origins add --merchant mer_... ${origin} (and check the publishable key).`,
            { code: "origin_not_allowed", param: "origin", type: "invalid_request_error" },
          ),
        );
      }, FRAME_READY_TIMEOUT_MS);
    }

    function settle(outcome) {
      const request = pending;
      pending = null;
      clearTimeout(request.timer);
      outcome(request);
    }

    function onMessage(event) {
      if (event.origin !== vaultOrigin || event.source !== iframe.contentWindow) return;
      const data = event.data;
      if (!isObject(data) || typeof data.type !== "string") return;
      switch (data.type) {
        case "bastion:ready":
          clearTimeout(readyTimer);
          markReady();
          break;
        case "bastion:change":
          if (onChange) {
            onChange({ complete: data.complete === true, brand: text(data.brand), error: text(data.error) });
          }
          break;
        case "bastion:resize":
          if (Number.isFinite(data.height) && data.height > 0 && data.height <= FRAME_HEIGHT_MAX_PX) {
            iframe.style.height = `${Math.ceil(data.height)}px`;
          }
          break;
        case "bastion:token":
          if (pending && data.id === pending.id && isObject(data.token) && isObject(data.token.card)) {
            const card = data.token.card;
            const token = {
              id: text(data.token.id),
              card: {
                brand: text(card.brand),
                last4: text(card.last4),
                exp_month: Number.isInteger(card.exp_month) ? card.exp_month : null,
                exp_year: Number.isInteger(card.exp_year) ? card.exp_year : null,
                funding: text(card.funding),
              },
            };
            settle((request) => request.resolve({ token }));
          }
          break;
        case "bastion:error":
          if (pending && data.id === pending.id) {
            const error = isObject(data.error) ? data.error : {};
            settle((request) =>
              request.reject(
                new BastionError(text(error.message) ?? "The card could not be tokenized.", {
                  code: text(error.code),
                  param: text(error.param),
                  type: text(error.type),
                  requestId: text(error.request_id),
                }),
              ),
            );
          }
          break;
        default:
          break;
      }
    }

    function tokenize() {
      if (destroyed) {
        return Promise.reject(new BastionError("The card fields were destroyed.", { code: "destroyed" }));
      }
      if (pending) {
        return Promise.reject(
          new BastionError("Another tokenize() call is still waiting for its answer.", { code: "tokenize_in_progress" }),
        );
      }
      return new Promise((resolve, reject) => {
        const id = requestId();
        const timer = setTimeout(() => {
          if (pending && pending.id === id) {
            settle((request) =>
              request.reject(new BastionError("The card fields did not answer in time.", { code: "timeout" })),
            );
          }
        }, TOKENIZE_TIMEOUT_MS);
        pending = { id, resolve, reject, timer };
        ready.then(
          () => {
            if (pending && pending.id === id && iframe.contentWindow) {
              iframe.contentWindow.postMessage({ type: "bastion:tokenize", id }, vaultOrigin);
            }
          },
          (error) => {
            if (pending && pending.id === id) settle((request) => request.reject(error));
          },
        );
      });
    }

    function destroy() {
      if (destroyed) return;
      destroyed = true;
      window.removeEventListener("message", onMessage);
      iframe.removeEventListener("load", onFrameLoad);
      clearTimeout(readyTimer);
      if (pending) {
        settle((request) => request.reject(new BastionError("The card fields were destroyed.", { code: "destroyed" })));
      }
      iframe.remove();
    }

    // Listen before the iframe exists, so its first message cannot be missed.
    window.addEventListener("message", onMessage);
    iframe.addEventListener("load", onFrameLoad);
    container.appendChild(iframe);
    return Object.freeze({ ready, tokenize, destroy });
  }

  function Bastion(publishableKey, options = {}) {
    if (typeof publishableKey !== "string" || !/^pk_(test|live)_[A-Za-z0-9]+$/.test(publishableKey)) {
      throw new TypeError("Bastion: give a publishable key (pk_test_... or pk_live_...), never a secret key.");
    }
    let vaultOrigin;
    if (options.vaultOrigin !== undefined) {
      vaultOrigin = originOf(options.vaultOrigin, "options.vaultOrigin");
    } else if (scriptSource) {
      vaultOrigin = originOf(scriptSource, "the src of bastion.js");
    } else {
      throw new Error("Bastion: cannot tell the vault's origin; load bastion.js from the vault or pass options.vaultOrigin.");
    }
    return Object.freeze({
      mountCard: (target, mountOptions = {}) => mountCard(publishableKey, vaultOrigin, target, mountOptions),
    });
  }

  window.Bastion = Bastion;
})();
