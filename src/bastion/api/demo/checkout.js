// The demo shop's checkout: card fields from the vault (bastion.js), a token from them, and the
// shop's own server paying the order with it. This page never sees card data. A card whose
// issuer asks for 3-D Secure takes the browser to the issuer's page, which sends it back to
// /demo/checkout/complete: that page shows the outcome.
(() => {
  "use strict";

  const config = document.documentElement.dataset;
  const form = document.getElementById("checkout-form");
  const payButton = document.getElementById("pay");
  const status = document.getElementById("status");
  const errorBox = document.getElementById("error");
  const result = document.getElementById("result");

  function showError(message) {
    errorBox.textContent = message;
  }

  function showResult(payment) {
    const card = payment.card || {};
    const amount = new Intl.NumberFormat("en", { style: "currency", currency: payment.currency ?? "EUR" });
    document.getElementById("result-amount").textContent = amount.format((payment.amount ?? 0) / 100);
    document.getElementById("result-brand").textContent = card.brand ?? "";
    document.getElementById("result-last4").textContent = card.last4 ?? "";
    document.getElementById("result-id").textContent = payment.payment_intent ?? "";
    document.getElementById("result-payment-method").textContent = payment.payment_method ?? "";
    document.getElementById("result-fingerprint").textContent = card.fingerprint ?? "";
    result.hidden = false;
  }

  async function pay(tokenId) {
    const response = await fetch("/demo/payments", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ token: tokenId }),
    });
    let body = null;
    try {
      body = await response.json();
    } catch {
      body = null;
    }
    if (!response.ok) {
      throw new Error(body?.error?.message ?? `The shop's server answered with status ${response.status}.`);
    }
    return body;
  }

  let card;
  try {
    card = Bastion(config.publishableKey, { vaultOrigin: config.vaultOrigin }).mountCard("#card-element", {
      onChange(state) {
        // The fields show their own errors; this one is for problems outside them.
        if (state.error === null && errorBox.textContent) {
          showError("");
        }
      },
    });
  } catch (error) {
    status.textContent = "";
    showError(error.message);
    return;
  }

  // Once the fields are there they speak for themselves: the enabled button is the signal.
  card.ready.then(
    () => {
      status.textContent = "";
      payButton.disabled = false;
    },
    (error) => {
      status.textContent = "";
      showError(error.message);
    },
  );

  let paid = false;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    payButton.disabled = true;
    form.setAttribute("aria-busy", "true");
    status.textContent = "Paying\u2026";
    showError("");
    result.hidden = true;
    let leaving = false;
    try {
      const { token } = await card.tokenize();
      const payment = await pay(token.id);
      if (payment.status === "requires_action") {
        leaving = true;
        window.location.assign(payment.redirect_url);
      } else {
        showResult(payment);
        paid = true;
        payButton.textContent = "Paid";
      }
    } catch (error) {
      // An error about a card field is already shown under that field, which has the focus.
      if (!error.param?.startsWith("card[")) {
        showError(error.message);
      }
    } finally {
      status.textContent = leaving ? "Taking you to your bank\u2026" : "";
      form.setAttribute("aria-busy", String(leaving));
      // One order, one payment: once paid, or on the way to the bank, the button stays off.
      payButton.disabled = paid || leaving;
    }
  });
})();
