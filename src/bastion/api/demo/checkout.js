// The demo shop's checkout: card fields from the vault (bastion.js), a token from them, and the
// shop's own server paying the order with it. This page never sees card data.
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
    try {
      const { token } = await card.tokenize();
      showResult(await pay(token.id));
      paid = true;
      payButton.textContent = "Paid";
    } catch (error) {
      // An error about a card field is already shown under that field, which has the focus.
      if (!error.param?.startsWith("card[")) {
        showError(error.message);
      }
    } finally {
      status.textContent = "";
      form.setAttribute("aria-busy", "false");
      // One order, one payment: once paid, the button stays off.
      payButton.disabled = paid;
    }
  });
})();
