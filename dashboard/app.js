// The dashboard's shell: the router (History API paths, the same ones the mails link to), the
// signed-in layout with the account switcher, the sign-in screens and the step-up prompt.
// The account screens live in screens.js.

import { api, onSignedOut, onStepUp, Problem, session } from "./api.js";
import { dialog, field, form, h, link, showError, toast } from "./ui.js";
import { screens } from "./screens.js";

const main = () => document.getElementById("main");

/** Public screens (no sign-in needed). */
const publicRoutes = {
  "/login": login,
  "/signup": signup,
  "/verify-email": verifyEmail,
  "/magic-link": magicLink,
  "/password-reset": passwordReset,
};

const nav = [
  ["/sessions", "Sessions"],
  ["/profiles", "Profiles"],
  ["/keys", "API keys"],
  ["/webhooks", "Webhooks"],
  ["/usage", "Usage"],
  ["/audit", "Audit log"],
  ["/team", "Team"],
  ["/billing", "Billing"],
  ["/settings", "Settings"],
];

export function go(path, replace = false) {
  if (replace) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  render();
}

let timers = [];

/** Runs `fn` every `ms` while the current screen is shown. */
export function every(ms, fn) {
  timers.push(setInterval(fn, ms));
}

let cleanups = [];

/** Runs `fn` when the current screen is left. */
export function onLeave(fn) {
  cleanups.push(fn);
}

async function render() {
  for (const t of timers) clearInterval(t);
  for (const c of cleanups) c();
  timers = [];
  cleanups = [];
  const path = location.pathname.replace(/\/+$/, "") || "/";
  const params = new URLSearchParams(location.search);
  const root = document.getElementById("app");
  if (publicRoutes[path]) {
    root.replaceChildren(h("main", { id: "main", class: "narrow", tabindex: "-1" }, h("h1", { class: "brand" }, "Driftstack")));
    return run(() => publicRoutes[path](params));
  }
  if (path === "/accept-invite" && !session.signedIn) {
    sessionStorage.setItem("ds.next", location.pathname + location.search);
    return go("/login", true);
  }
  if (!session.signedIn) return go("/login", true);
  if (path === "/") return go("/sessions", true);
  await layout(path);
  const [, first, id] = path.split("/");
  const screen = screens[first];
  if (!screen) {
    main().append(h("h1", {}, "Not found"), h("p", {}, "There is no such page."));
    return;
  }
  await run(() => screen({ id, params, go, every, onLeave, refreshMe, me }));
}

async function run(screen) {
  try {
    await screen();
  } catch (err) {
    main()?.append(h("p", { class: "form-error", role: "alert" }, err.message || String(err)));
  }
  main()?.focus({ preventScroll: true });
}

let me = null;

async function layout(path) {
  const root = document.getElementById("app");
  if (!me) {
    try {
      me = await api("GET", "/v1/account/me");
    } catch (err) {
      if (!session.signedIn) return;
      throw err;
    }
  }
  const switcher = h(
    "select",
    {
      "aria-label": "Account",
      onchange: (e) => {
        session.account = e.target.value;
        me = null;
        render();
      },
    },
    me.memberships.map((m) =>
      h("option", { value: m.account_id, selected: m.account_id === me.id }, `${m.account_name} (${m.role})`),
    ),
  );
  root.replaceChildren(
    h("a", { href: "#main", class: "skip" }, "Skip to content"),
    h(
      "header",
      {},
      h("a", { href: "/sessions", "data-link": "", class: "brand" }, "Driftstack"),
      h("nav", { "aria-label": "Main" }, h("ul", {}, nav.map(([href, label]) =>
        h("li", {}, h("a", { href, "data-link": "", "aria-current": path.startsWith(href) ? "page" : false }, label))))),
      h("a", { href: "/docs/", class: "docs" }, "API reference"),
      h("div", { class: "who" }, switcher, h("span", { class: "hint" }, session.user?.email || ""),
        h("button", { type: "button", onclick: signOut }, "Sign out")),
    ),
    h("main", { id: "main", tabindex: "-1" }),
  );
}

/** Forgets the cached account (after a change of name or membership). */
export function refreshMe() {
  me = null;
}

async function signOut() {
  try {
    await api("POST", "/v1/auth/logout");
  } catch {
    // Signed out locally either way.
  }
  session.clear();
  me = null;
  go("/login");
}

/** After a sign-in: keep the tokens and go where the user was heading. */
function signedIn(tokens) {
  session.keep(tokens);
  me = null;
  const next = sessionStorage.getItem("ds.next");
  sessionStorage.removeItem("ds.next");
  go(next || "/sessions");
}

/** A `LoginResponse` is tokens or an MFA challenge. */
async function finishLogin(answer) {
  if (!answer.mfa_required) return signedIn(answer);
  main().replaceChildren(h("h1", { class: "brand" }, "Driftstack"), h("h2", {}, "Two-factor verification"));
  const useRecovery = h("input", { type: "checkbox", id: "use-recovery" });
  const code = h("input", { name: "code", autocomplete: "one-time-code", inputmode: "numeric", required: true });
  main().append(
    form(
      [field("Code from your authenticator app (or a recovery code)", code),
        h("div", { class: "check" }, useRecovery, h("label", { for: "use-recovery" }, "This is a recovery code"))],
      "Verify",
      async (v) => {
        const body = { mfa_token: answer.mfa_token };
        if (useRecovery.checked) body.recovery_code = v.code;
        else body.code = v.code;
        signedIn(await api("POST", "/v1/auth/mfa/challenge", body, { anonymous: true }));
      },
    ),
  );
  code.focus();
}

function login() {
  main().append(
    h("h2", {}, "Sign in"),
    form(
      [field("Email", { name: "email", type: "email", autocomplete: "username", required: true }),
        field("Password", { name: "password", type: "password", autocomplete: "current-password", required: true })],
      "Sign in",
      async (v, f) => {
        try {
          await finishLogin(await api("POST", "/v1/auth/login", v, { anonymous: true }));
        } catch (err) {
          if (err.code !== "email_not_verified") throw err;
          f.querySelector(".verify-note")?.remove();
          const note = h("div", { class: "notice verify-note", role: "status" },
            h("p", {}, "Confirm your email first: follow the link we sent you."));
          note.append(h("button", {
            type: "button",
            onclick: async (e) => {
              e.target.disabled = true;
              await api("POST", "/v1/auth/verify-email/resend", { email: v.email }, { anonymous: true })
                .then(() => note.replaceChildren(h("p", {}, `A new link is on its way to ${v.email}.`)))
                .catch((problem) => note.replaceChildren(h("p", {}, problem.message)));
            },
          }, "Send a new link"));
          f.append(note);
        }
      },
    ),
    h("p", {}, link("/signup", "Create an account"), " · ", link("/magic-link", "Email me a sign-in link"),
      " · ", link("/password-reset", "Forgot your password?")),
  );
}

function signup() {
  main().append(
    h("h2", {}, "Create an account"),
    form(
      [field("Your name", { name: "name", autocomplete: "name" }),
        field("Email", { name: "email", type: "email", autocomplete: "email", required: true }),
        field("Password", { name: "password", type: "password", autocomplete: "new-password", required: true },
          "At least 8 characters; common passwords are refused."),
        field("Account name", { name: "account_name", autocomplete: "organization" })],
      "Sign up",
      async (v, f) => {
        const body = { email: v.email, password: v.password };
        if (v.name) body.name = v.name;
        if (v.account_name) body.account_name = v.account_name;
        await api("POST", "/v1/auth/signup", body, { anonymous: true });
        f.replaceWith(h("p", { role: "status", class: "notice" },
          `We sent a verification link to ${v.email}. Open it to finish signing up.`));
      },
    ),
    h("p", {}, "Already have an account? ", link("/login", "Sign in")),
  );
}

async function verifyEmail(params) {
  main().append(h("h2", {}, "Verify your email"));
  const token = params.get("token");
  if (!token) {
    main().append(h("p", {}, "Open the link from the verification mail."));
    return;
  }
  const verified = (r) => {
    const text = r.password_kept
      ? "Your email is verified. You can sign in now."
      : "Your email is verified. No password was kept: sign in with a link, or set a password with “Forgot your password?”.";
    main().replaceChildren(
      h("h2", {}, "Verify your email"),
      h("p", { role: "status", class: "notice" }, text),
      h("p", {}, link("/login", "Sign in")),
    );
  };
  const verify = async (password) => {
    try {
      verified(await api("POST", "/v1/auth/verify-email", password ? { token, password } : { token }, { anonymous: true }));
    } catch (err) {
      if (err instanceof Problem && err.status === 401) throw err;
      main().append(h("p", { class: "form-error", role: "alert" }, err.message), resendForm());
    }
  };
  const withoutPassword = h("button", { type: "button" }, "I didn't sign up: verify without a password");
  withoutPassword.addEventListener("click", () => verify(null));
  main().append(
    h("p", {}, "To keep the password chosen at sign-up, enter it. Whoever proves the address owns the account: without it, the address is verified and no earlier password works."),
    form(
      [field("Password chosen at sign-up", { name: "password", type: "password", autocomplete: "current-password", required: true })],
      "Verify",
      async (v) => verify(v.password),
      [withoutPassword],
    ),
  );
}

function resendForm() {
  return form([field("Email", { name: "email", type: "email", required: true })], "Send a new link", async (v, f) => {
    await api("POST", "/v1/auth/verify-email/resend", v, { anonymous: true });
    f.replaceWith(h("p", { role: "status", class: "notice" }, "If that address is waiting for verification, a new link is on its way."));
  });
}

async function magicLink(params) {
  main().append(h("h2", {}, "Sign in with a link"));
  const token = params.get("token");
  if (token) {
    try {
      return await finishLogin(await api("POST", "/v1/auth/magic-link/verify", { token }, { anonymous: true }));
    } catch (err) {
      main().append(h("p", { class: "form-error", role: "alert" }, err.message));
    }
  }
  main().append(
    form([field("Email", { name: "email", type: "email", autocomplete: "username", required: true })], "Email me a link", async (v, f) => {
      await api("POST", "/v1/auth/magic-link", v, { anonymous: true });
      f.replaceWith(h("p", { role: "status", class: "notice" }, `If ${v.email} has an account, a sign-in link is on its way.`));
    }),
    h("p", {}, link("/login", "Sign in with a password")),
  );
}

function passwordReset(params) {
  main().append(h("h2", {}, "Reset your password"));
  const token = params.get("token");
  if (token) {
    main().append(form(
      [field("New password", { name: "password", type: "password", autocomplete: "new-password", required: true },
        "At least 8 characters; common passwords are refused.")],
      "Set password",
      async (v, f) => {
        await api("POST", "/v1/auth/password-reset/confirm", { token, password: v.password }, { anonymous: true });
        f.replaceWith(h("p", { role: "status", class: "notice" }, "Your password is changed and every other sign-in ended."), h("p", {}, link("/login", "Sign in")));
      },
    ));
    return;
  }
  main().append(
    form([field("Email", { name: "email", type: "email", autocomplete: "username", required: true })], "Email me a reset link", async (v, f) => {
      await api("POST", "/v1/auth/password-reset", v, { anonymous: true });
      f.replaceWith(h("p", { role: "status", class: "notice" }, `If ${v.email} has an account, a reset link is on its way.`));
    }),
    h("p", {}, link("/login", "Back to sign in")),
  );
}

/** The step-up prompt: TOTP code, recovery code, or the password when MFA is off — only what the
 * person has. Without either (the first-start owner, link-only sign-ins) it offers a mail to set
 * a password instead. */
async function stepUpPrompt() {
  const user = (await api("GET", "/v1/account/me").catch(() => null))?.user;
  const mfa = user ? user.mfa_enabled : session.user?.mfa_enabled;
  if (!mfa && user && !user.password_set) return noMethodPrompt(user.email);
  return dialog("Confirm it's you", (close) => {
    const useRecovery = h("input", { type: "checkbox", id: "stepup-recovery" });
    const input = mfa
      ? h("input", { name: "secret", autocomplete: "one-time-code", required: true })
      : h("input", { name: "secret", type: "password", autocomplete: "current-password", required: true });
    const f = form(
      [h("p", {}, "This action needs a fresh verification."),
        field(mfa ? "Authenticator code" : "Password", input),
        mfa ? h("div", { class: "check" }, useRecovery, h("label", { for: "stepup-recovery" }, "Use a recovery code instead")) : null],
      "Verify",
      async (v) => {
        const body = !mfa ? { password: v.secret } : useRecovery.checked ? { recovery_code: v.secret } : { code: v.secret };
        session.keep(await api("POST", "/v1/auth/mfa/step-up", body));
        close(true);
      },
      [h("button", { type: "button", onclick: () => close(false) }, "Cancel")],
    );
    setTimeout(() => input.focus());
    return f;
  }).then((ok) => Boolean(ok));
}

/** For a person with neither a password nor two-factor: a link to set a password. */
function noMethodPrompt(email) {
  return dialog("Confirm it's you", (close) => {
    const status = h("p", { role: "status", class: "hint" });
    const send = h("button", {
      type: "button", class: "primary",
      onclick: async () => {
        send.disabled = true;
        try {
          await api("POST", "/v1/auth/password-reset", { email }, { anonymous: true });
          status.textContent = `A link to set your password is on its way to ${email}. Set it, then try again.`;
        } catch (err) {
          status.textContent = err.message;
          send.disabled = false;
        }
      },
    }, "Email me a link to set a password");
    return h("div", {},
      h("p", {}, "This action needs a fresh verification, by password or two-factor code. You signed in with a link and have neither yet."),
      h("div", { class: "actions" }, send, h("button", { type: "button", onclick: () => close(false) }, "Cancel")),
      status);
  }).then(() => false);
}

onStepUp(stepUpPrompt);
onSignedOut(() => {
  me = null;
  if (!publicRoutes[location.pathname]) go("/login", true);
});

document.addEventListener("click", (event) => {
  const a = event.target.closest("a[data-link]");
  if (!a || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
  event.preventDefault();
  go(a.getAttribute("href"));
});
window.addEventListener("popstate", render);
window.addEventListener("unhandledrejection", (event) => {
  const err = event.reason;
  if (err instanceof Problem) {
    event.preventDefault();
    toast(err.message, "error");
  }
});

export { showError };
render();
