// The hosted card fields. This page runs on the vault's origin inside the merchant's iframe, so
// the card data never reaches the merchant page: it lives in the inputs and, for one request, in
// local variables. Nothing is logged or stored, and all state stays in this closure.
(() => {
  "use strict";

  // Mirrors _IIN_RANGES in src/bastion/vault/domain.py, in the same order (most specific first);
  // the vault applies the same rules again and its answer decides.
  const IIN_RANGES = [
    { brand: "amex", low: 34, high: 34, lengths: [15] },
    { brand: "amex", low: 37, high: 37, lengths: [15] },
    { brand: "diners", low: 300, high: 305, lengths: [14, 16, 17, 18, 19] },
    { brand: "diners", low: 36, high: 36, lengths: [14, 15, 16, 17, 18, 19] },
    { brand: "diners", low: 38, high: 39, lengths: [16, 17, 18, 19] },
    { brand: "discover", low: 6011, high: 6011, lengths: [16, 17, 18, 19] },
    { brand: "discover", low: 644, high: 649, lengths: [16, 17, 18, 19] },
    { brand: "discover", low: 65, high: 65, lengths: [16, 17, 18, 19] },
    { brand: "jcb", low: 3528, high: 3589, lengths: [16, 17, 18, 19] },
    { brand: "unionpay", low: 62, high: 62, lengths: [16, 17, 18, 19] },
    { brand: "mastercard", low: 51, high: 55, lengths: [16] },
    { brand: "mastercard", low: 2221, high: 2720, lengths: [16] },
    { brand: "visa", low: 4, high: 4, lengths: [13, 16, 19] },
  ];
  const BRAND_LABELS = {
    visa: "Visa",
    mastercard: "Mastercard",
    amex: "American Express",
    discover: "Discover",
    diners: "Diners Club",
    jcb: "JCB",
    unionpay: "UnionPay",
    unknown: "",
  };
  const NUMBER_LENGTH_MIN = 12;
  const NUMBER_LENGTH_MAX = 19;
  const NAME_LENGTH_MAX = 100;
  const EXPIRY_YEARS_AHEAD_MAX = 20;
  // The vault's bounds on signals (src/bastion/vault/schemas.py): beyond them it refuses the request.
  const LANGUAGES_MAX = 10;
  const SIGNAL_TEXT_LENGTH_MAX = 64;
  const KEYSTROKES_MAX = 10000;
  const DURATION_MS_MAX = 86400000;
  const REQUEST_ID_LENGTH_MAX = 64;

  const root = document.documentElement;
  const publishableKey = root.dataset.publishableKey || "";
  const parentOrigin = root.dataset.parentOrigin || "";

  const form = document.getElementById("card-form");
  const brandLabel = document.getElementById("card-brand");
  const field = (name) => ({
    input: document.getElementById(`card-${name}`),
    errorElement: document.getElementById(`card-${name}-error`),
    touched: false,
  });
  const number = field("number");
  const expiry = field("expiry");
  const cvc = field("cvc");
  const cardholder = field("name");
  const fields = [number, expiry, cvc, cardholder];

  // ---- Card rules ----

  const isDigit = (char) => char >= "0" && char <= "9";
  const digitsOf = (value) => value.replace(/\D/g, "");

  function rangeFor(digits) {
    for (const range of IIN_RANGES) {
      const prefixDigits = String(range.low).length;
      const prefix = digits.slice(0, prefixDigits);
      if (prefix.length === prefixDigits && range.low <= Number(prefix) && Number(prefix) <= range.high) {
        return range;
      }
    }
    return null;
  }

  const brandFor = (digits) => rangeFor(digits)?.brand ?? "unknown";

  function digitsMax(digits) {
    const range = rangeFor(digits);
    return range ? Math.max(...range.lengths) : NUMBER_LENGTH_MAX;
  }

  function luhnValid(digits) {
    let total = 0;
    for (let index = 0; index < digits.length; index += 1) {
      let value = digits.charCodeAt(digits.length - 1 - index) - 48;
      if (index % 2 === 1) {
        value = value > 4 ? value * 2 - 9 : value * 2;
      }
      total += value;
    }
    return total % 10 === 0;
  }

  function formatNumber(digits) {
    const groups = brandFor(digits) === "amex" ? [4, 6, 5] : [4, 4, 4, 4, 4];
    const parts = [];
    let start = 0;
    for (const size of groups) {
      if (start >= digits.length) break;
      parts.push(digits.slice(start, start + size));
      start += size;
    }
    return parts.join(" ");
  }

  const problem = (code, message, param) => ({ type: "validation_error", code, message, param });

  function numberProblem(digits) {
    const range = rangeFor(digits);
    const lengths = range ? range.lengths : null;
    const long = lengths ? Math.max(...lengths) : NUMBER_LENGTH_MAX;
    const allowed = lengths ? lengths.includes(digits.length) : digits.length >= NUMBER_LENGTH_MIN;
    if (!allowed && digits.length < long) {
      return problem("incomplete_number", "Your card number is incomplete.", "card[number]");
    }
    if (!allowed || !luhnValid(digits)) {
      return problem("incorrect_number", "Your card number is invalid.", "card[number]");
    }
    return null;
  }

  // MM and YY as up to four digits. Autofill may bring "MM/YYYY", and "4" or "1/" mean a
  // one-digit month: both become two-digit months here.
  function expiryDigits(value) {
    const longYear = /^\s*(\d{1,2})\s*[/.-]\s*(\d{4})\s*$/.exec(value);
    if (longYear) {
      return longYear[1].padStart(2, "0") + longYear[2].slice(2);
    }
    const shortMonth = /^\s*(\d)\s*[/.-]\s*(\d*)\s*$/.exec(value);
    let digits = shortMonth ? `0${shortMonth[1]}${shortMonth[2]}` : digitsOf(value);
    if (digits.length > 0 && digits[0] > "1") {
      digits = `0${digits}`;
    }
    return digits.slice(0, 4);
  }

  const formatExpiry = (digits) => (digits.length <= 2 ? digits : `${digits.slice(0, 2)} / ${digits.slice(2)}`);

  function expiryParts(value) {
    const digits = expiryDigits(value);
    if (digits.length !== 4) return null;
    return { month: Number(digits.slice(0, 2)), year: 2000 + Number(digits.slice(2)) };
  }

  function expiryProblem(value) {
    const parts = expiryParts(value);
    if (!parts) {
      return problem("incomplete_expiry", "Your card's expiration date is incomplete.", "card[exp_month]");
    }
    if (parts.month < 1 || parts.month > 12) {
      return problem("invalid_expiry_month", "Your card's expiration month is invalid.", "card[exp_month]");
    }
    const today = new Date();
    const thisYear = today.getFullYear();
    if (parts.year < thisYear) {
      return problem("invalid_expiry_year", "Your card's expiration year is in the past.", "card[exp_year]");
    }
    if (parts.year > thisYear + EXPIRY_YEARS_AHEAD_MAX) {
      return problem("invalid_expiry_year", "Your card's expiration year is invalid.", "card[exp_year]");
    }
    if (parts.year === thisYear && parts.month < today.getMonth() + 1) {
      return problem("expired_card", "Your card's expiration date is in the past.", "card[exp_month]");
    }
    return null;
  }

  const cvcLength = () => (brandFor(digitsOf(number.input.value)) === "amex" ? 4 : 3);

  function cvcProblem(value) {
    if (value.length < cvcLength()) {
      return problem("incomplete_cvc", "Your card's security code is incomplete.", "card[cvc]");
    }
    if (value.length > cvcLength()) {
      return problem("invalid_cvc", "Your card's security code is invalid.", "card[cvc]");
    }
    return null;
  }

  function nameProblem(value) {
    if (!value.trim()) {
      return problem("invalid_name", "Enter the name on the card.", "card[name]");
    }
    // Code points, as the vault counts them; no control characters, as the vault refuses them.
    if ([...value].length > NAME_LENGTH_MAX || /[\u0000-\u001f]/.test(value)) {
      return problem("invalid_name", `The name on the card must be at most ${NAME_LENGTH_MAX} printable characters.`, "card[name]");
    }
    return null;
  }

  number.check = () => numberProblem(digitsOf(number.input.value));
  expiry.check = () => expiryProblem(expiry.input.value);
  cvc.check = () => cvcProblem(cvc.input.value);
  cardholder.check = () => nameProblem(cardholder.input.value);

  // ---- Showing errors ----

  function show(target, message) {
    target.errorElement.textContent = message || "";
    target.input.setAttribute("aria-invalid", message ? "true" : "false");
  }

  // A field shows its error once the cardholder has left it or typed it to full length; from
  // then on the message follows every change.
  function render(target) {
    show(target, target.touched ? target.check()?.message : null);
  }

  function touch(target) {
    target.touched = true;
    render(target);
  }

  function showBrand(brand) {
    if (brandLabel.dataset.brand !== brand) {
      brandLabel.dataset.brand = brand;
      brandLabel.textContent = BRAND_LABELS[brand];
    }
  }

  // ---- Formatting as you type ----

  function caretAfterDigits(formatted, count) {
    if (count <= 0) return 0;
    let seen = 0;
    for (let index = 0; index < formatted.length; index += 1) {
      if (isDigit(formatted[index])) {
        seen += 1;
        if (seen === count) return index + 1;
      }
    }
    return formatted.length;
  }

  // Rewrites a digit field with its separators, keeping the caret after the same digit.
  function reformat(input, toDigits, format) {
    const caret = input.selectionStart ?? input.value.length;
    const typedBefore = digitsOf(input.value.slice(0, caret)).length;
    const typed = digitsOf(input.value);
    const digits = toDigits(input.value);
    // A month typed as "4" gains a leading zero before the caret.
    const before = Math.min(typedBefore + Math.max(0, digits.length - typed.length), digits.length);
    const formatted = format(digits);
    if (formatted !== input.value) {
      input.value = formatted;
      if (document.activeElement === input) {
        const position = caretAfterDigits(formatted, before);
        input.setSelectionRange(position, position);
      }
    }
    return digits;
  }

  // Backspace or Delete next to a separator removes the digit beyond it: otherwise the
  // separator would come straight back and the caret would seem stuck.
  function deleteAcrossSeparator(event, afterEdit) {
    const input = event.target;
    const start = input.selectionStart;
    if (start === null || start !== input.selectionEnd) return;
    const value = input.value;
    let from = start;
    let to = start;
    if (event.inputType === "deleteContentBackward" && start > 0 && !isDigit(value[start - 1])) {
      from = start - 1;
      while (from >= 0 && !isDigit(value[from])) from -= 1;
      if (from < 0) return;
    } else if (event.inputType === "deleteContentForward" && start < value.length && !isDigit(value[start])) {
      to = start;
      while (to < value.length && !isDigit(value[to])) to += 1;
      if (to >= value.length) return;
      to += 1;
    } else {
      return;
    }
    event.preventDefault();
    input.value = value.slice(0, from) + value.slice(to);
    input.setSelectionRange(from, from);
    afterEdit();
  }

  function onNumberInput() {
    const digits = reformat(
      number.input,
      (value) => {
        const all = digitsOf(value);
        return all.slice(0, digitsMax(all));
      },
      formatNumber,
    );
    showBrand(brandFor(digits));
    if (digits.length === digitsMax(digits)) {
      number.touched = true;
    }
    render(number);
    // The brand decides the CVC's length.
    render(cvc);
    announceChange();
  }

  function onExpiryInput() {
    const digits = reformat(expiry.input, expiryDigits, formatExpiry);
    if (digits.length === 4) {
      expiry.touched = true;
    }
    render(expiry);
    announceChange();
  }

  function onCvcInput() {
    const digits = digitsOf(cvc.input.value).slice(0, 4);
    if (digits !== cvc.input.value) {
      cvc.input.value = digits;
    }
    if (digits.length >= cvcLength()) {
      cvc.touched = true;
    }
    render(cvc);
    announceChange();
  }

  function onNameInput() {
    render(cardholder);
    announceChange();
  }

  // ---- Signals (summaries only: no key, no value, no per-key timestamps) ----

  const behaviour = {
    keystrokeCount: 0,
    intervalCount: 0,
    intervalMean: 0,
    intervalSquares: 0, // Welford's running sum of squared deviations
    intervalMin: Infinity,
    intervalMax: 0,
    lastKeyAt: null,
    pasted: false,
    firstFocusAt: null,
  };

  function resetBehaviour() {
    Object.assign(behaviour, {
      keystrokeCount: 0,
      intervalCount: 0,
      intervalMean: 0,
      intervalSquares: 0,
      intervalMin: Infinity,
      intervalMax: 0,
      lastKeyAt: null,
      pasted: false,
      firstFocusAt: null,
    });
  }

  // Counts the keys that edit the field; the key itself is looked at here and never kept.
  function onNumberKeydown(event) {
    if (event.repeat || event.isComposing) return;
    if (event.key.length !== 1 && event.key !== "Backspace" && event.key !== "Delete") return;
    const now = performance.now();
    behaviour.keystrokeCount += 1;
    if (behaviour.lastKeyAt !== null) {
      const interval = now - behaviour.lastKeyAt;
      behaviour.intervalCount += 1;
      const delta = interval - behaviour.intervalMean;
      behaviour.intervalMean += delta / behaviour.intervalCount;
      behaviour.intervalSquares += delta * (interval - behaviour.intervalMean);
      behaviour.intervalMin = Math.min(behaviour.intervalMin, interval);
      behaviour.intervalMax = Math.max(behaviour.intervalMax, interval);
    }
    behaviour.lastKeyAt = now;
  }

  const milliseconds = (value) => Math.round(Math.min(value, DURATION_MS_MAX) * 10) / 10;

  function behaviourSignals() {
    const count = behaviour.intervalCount;
    const sinceFocus = behaviour.firstFocusAt === null ? null : Math.round(performance.now() - behaviour.firstFocusAt);
    return {
      keystroke_count: Math.min(behaviour.keystrokeCount, KEYSTROKES_MAX),
      // No interval before a second key (a pasted number, say): no summary rather than zeros.
      inter_key_interval_ms: count
        ? {
            mean: milliseconds(behaviour.intervalMean),
            stdev: milliseconds(Math.sqrt(behaviour.intervalSquares / count)),
            min: milliseconds(behaviour.intervalMin),
            max: milliseconds(behaviour.intervalMax),
          }
        : null,
      pasted: behaviour.pasted,
      time_to_complete_ms: sinceFocus === null ? null : Math.min(sinceFocus, DURATION_MS_MAX),
    };
  }

  async function sha256Hex(text) {
    if (!window.crypto || !window.crypto.subtle) return null; // not a secure context
    const digest = await window.crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
    return Array.from(new Uint8Array(digest), (byte) => byte.toString(16).padStart(2, "0")).join("");
  }

  const userAgentSha256 = sha256Hex(navigator.userAgent).catch(() => null);

  const shortText = (value) => (typeof value === "string" && value ? value.slice(0, SIGNAL_TEXT_LENGTH_MAX) : null);

  function timezone() {
    try {
      return shortText(Intl.DateTimeFormat().resolvedOptions().timeZone);
    } catch {
      return null;
    }
  }

  async function deviceSignals() {
    return {
      timezone: timezone(),
      languages: Array.from(navigator.languages || [], shortText).filter(Boolean).slice(0, LANGUAGES_MAX),
      screen: {
        width: window.screen.width,
        height: window.screen.height,
        color_depth: window.screen.colorDepth,
        pixel_ratio: window.devicePixelRatio,
      },
      platform: shortText(navigator.platform),
      user_agent_sha256: await userAgentSha256,
    };
  }

  // ---- Talking to the merchant page ----

  function originOrNull(value) {
    try {
      const parsed = new URL(value);
      return parsed.origin === value ? value : null;
    } catch {
      return null;
    }
  }

  // Messages go to the one origin the vault was told about (never "*"); a page without a
  // parent or with a bad origin gets working fields and no messages.
  const trustedParent = window.parent !== window && originOrNull(parentOrigin) !== null;

  function post(message) {
    if (trustedParent) {
      window.parent.postMessage(message, parentOrigin);
    }
  }

  let lastChange = null;

  function announceChange() {
    const shown = fields.find((target) => target.errorElement.textContent);
    const change = {
      type: "bastion:change",
      complete: fields.every((target) => target.check() === null),
      brand: brandFor(digitsOf(number.input.value)),
      error: shown ? shown.errorElement.textContent : null,
    };
    const key = JSON.stringify(change);
    if (key !== lastChange) {
      lastChange = key;
      post(change);
    }
  }

  let lastHeight = null;

  function announceHeight() {
    const height = Math.ceil(root.getBoundingClientRect().height);
    if (height !== lastHeight) {
      lastHeight = height;
      post({ type: "bastion:resize", height });
    }
  }

  // ---- Tokenizing ----

  const FIELD_BY_PARAM = {
    "card[number]": number,
    "card[exp_month]": expiry,
    "card[exp_year]": expiry,
    "card[cvc]": cvc,
    "card[name]": cardholder,
  };

  let busy = false;

  function setBusy(value) {
    busy = value;
    form.setAttribute("aria-busy", value ? "true" : "false");
    for (const target of fields) {
      target.input.readOnly = value;
    }
  }

  const text = (value) => (typeof value === "string" ? value : null);
  const integer = (value) => (Number.isInteger(value) ? value : null);

  // Only the documented fields of the vault's error go on, as strings.
  function errorFrom(body, status) {
    const error = body && typeof body.error === "object" && body.error !== null ? body.error : null;
    if (!error) {
      return {
        type: "api_error",
        code: "api_error",
        message: `The card vault answered with status ${status}.`,
        param: null,
        request_id: null,
      };
    }
    return {
      type: text(error.type),
      code: text(error.code),
      message: text(error.message),
      param: text(error.param),
      request_id: text(error.request_id),
    };
  }

  function tokenFrom(body) {
    if (!body || typeof body.id !== "string" || typeof body.card !== "object" || body.card === null) {
      return null;
    }
    return {
      id: body.id,
      card: {
        brand: text(body.card.brand),
        last4: text(body.card.last4),
        exp_month: integer(body.card.exp_month),
        exp_year: integer(body.card.exp_year),
        funding: text(body.card.funding),
      },
    };
  }

  function reportProblem(id, target, error) {
    target.touched = true;
    show(target, error.message);
    target.input.focus();
    announceChange();
    post({ type: "bastion:error", id, error });
  }

  async function requestToken() {
    const parts = expiryParts(expiry.input.value);
    const body = {
      card: {
        number: digitsOf(number.input.value),
        exp_month: parts.month,
        exp_year: parts.year,
        cvc: cvc.input.value,
        name: cardholder.input.value.trim(),
      },
      signals: { device: await deviceSignals(), behaviour: behaviourSignals() },
    };
    const response = await fetch("/v1/tokens", {
      method: "POST",
      headers: { Authorization: `Bearer ${publishableKey}`, "Content-Type": "application/json" },
      body: JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
    });
    let answer = null;
    try {
      answer = await response.json();
    } catch {
      answer = null;
    }
    return { status: response.status, answer };
  }

  async function tokenize(id) {
    if (busy) {
      post({
        type: "bastion:error",
        id,
        error: { type: "validation_error", code: "tokenize_in_progress", message: "A card is already being submitted.", param: null },
      });
      return;
    }
    for (const target of fields) {
      target.touched = true;
      render(target);
    }
    const invalid = fields.find((target) => target.check() !== null);
    if (invalid) {
      reportProblem(id, invalid, invalid.check());
      return;
    }
    setBusy(true);
    let result;
    try {
      result = await requestToken();
    } catch {
      result = null;
    } finally {
      setBusy(false);
    }
    if (result === null) {
      post({
        type: "bastion:error",
        id,
        error: {
          type: "api_connection_error",
          code: "network_error",
          message: "The card vault could not be reached. Please try again.",
          param: null,
        },
      });
      return;
    }
    const token = result.status === 200 ? tokenFrom(result.answer) : null;
    if (!token) {
      const error = errorFrom(result.answer, result.status);
      const target = FIELD_BY_PARAM[error.param];
      if (target && error.message) {
        reportProblem(id, target, error);
      } else {
        post({ type: "bastion:error", id, error });
      }
      return;
    }
    post({ type: "bastion:token", id, token });
    // The vault holds the card now; this page keeps neither the number nor the code.
    number.input.value = "";
    cvc.input.value = "";
    number.touched = false;
    cvc.touched = false;
    showBrand("unknown");
    render(number);
    render(cvc);
    resetBehaviour();
    announceChange();
  }

  function onMessage(event) {
    if (event.origin !== parentOrigin || event.source !== window.parent) return;
    const data = event.data;
    if (typeof data !== "object" || data === null) return;
    if (data.type === "bastion:tokenize" && typeof data.id === "string" && data.id.length > 0 && data.id.length <= REQUEST_ID_LENGTH_MAX) {
      tokenize(data.id);
    }
  }

  // ---- Wiring ----

  form.addEventListener("submit", (event) => event.preventDefault());
  for (const target of fields) {
    target.input.addEventListener("focus", () => {
      if (behaviour.firstFocusAt === null) {
        behaviour.firstFocusAt = performance.now();
      }
    });
    target.input.addEventListener("blur", () => {
      touch(target);
      announceChange();
    });
  }
  number.input.addEventListener("beforeinput", (event) => deleteAcrossSeparator(event, onNumberInput));
  number.input.addEventListener("input", onNumberInput);
  number.input.addEventListener("keydown", onNumberKeydown);
  number.input.addEventListener("paste", () => {
    behaviour.pasted = true;
  });
  number.input.addEventListener("blur", () => {
    behaviour.lastKeyAt = null; // an interval spans typing, not time spent elsewhere
  });
  expiry.input.addEventListener("beforeinput", (event) => deleteAcrossSeparator(event, onExpiryInput));
  expiry.input.addEventListener("input", onExpiryInput);
  cvc.input.addEventListener("input", onCvcInput);
  cardholder.input.addEventListener("input", onNameInput);

  if (trustedParent) {
    window.addEventListener("message", onMessage);
    if ("ResizeObserver" in window) {
      new ResizeObserver(announceHeight).observe(root);
    }
    post({ type: "bastion:ready" });
    announceHeight();
  }
})();
