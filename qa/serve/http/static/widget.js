/*
 * News archive QA: the chat widget. Plain JavaScript, no framework, no build step.
 *
 *   <script src="http://HOST:PORT/widget.js" data-api="http://HOST:PORT" defer></script>
 *
 * Attributes of the script tag (all optional):
 *   data-api      base URL of the service (default: the origin this script came from)
 *   data-open     "true" to start with the chat open
 *   data-lang     "ar" or "en": language and direction of the widget's own labels
 *   data-title    the title shown in the chat's header
 *   data-timeout  seconds to wait for the service before giving up (default 30)
 *   data-filters  JSON: the part of the archive every answer comes from, as the
 *                 "filters" of POST /api/ask, e.g. '{"meta": {"section": ["sport"]}}'
 *                 or '{"published_from": "2015-01-01"}'. A value that is not a JSON
 *                 object makes every question fail with a message, rather than
 *                 answer from the whole archive.
 *
 * Any element of the page with a data-qa-ask="question" attribute asks that
 * question when clicked. window.QAWidget has open(), close(), ask(text), reset().
 *
 * Everything lives in a shadow root, so the page's styles and the widget's do not
 * mix. Text from articles, questions and answers is only ever inserted as text
 * (textContent / text nodes), never parsed as HTML.
 *
 * Stable hooks: root [data-qa-widget], input [data-qa-input], each answer
 * [data-qa-answer] (with data-qa-state="streaming" | "done" | "error", and once done
 * data-qa-outcome="answered" | "related" | "not_found"), each citation marker
 * [data-qa-citation], the highlighted span mark[data-qa-highlight]; a related answer's
 * list of passages [data-qa-related-passages], each [data-qa-passage] with its link
 * [data-qa-passage-link].
 *
 * The service says what each answer is (the "outcome" of its "done" event): answered,
 * shown with its citation markers; not_found, its refusal shown as it comes; related
 * (the archive may not answer directly), a line that says so in the question's
 * language and then the closest passages, as a list of sources, never as the answer.
 */
(function () {
  "use strict";

  var script = document.currentScript;
  if (!script) {
    return;
  }

  var HISTORY_TURNS = 3; // earlier questions sent with a follow-up
  var HISTORY_CHARS = 500; // each cut to this many code points (the server counts them, as Python does)
  var HISTORY_ANSWER_CHARS = 4000; // an earlier answer sent with its question is cut to this length

  var STRINGS = {
    en: {
      title: "Ask the archive",
      launcher: "Ask the archive",
      openChat: "Open the archive chat",
      closeChat: "Close the chat",
      newChat: "New conversation",
      inputLabel: "Your question",
      placeholder: "Ask a question…",
      keys: "Enter sends, Shift+Enter adds a line, Escape closes the chat.",
      send: "Send",
      conversation: "Conversation",
      welcome:
        "Ask about the news in the archive, in Arabic or English. Answers quote the articles; " +
        "click a number to see the source.",
      you: "You",
      assistant: "Archive",
      typing: "Searching the archive…",
      found: function (passages, articles) {
        return passages + (passages === 1 ? " passage" : " passages") + " found in " +
          articles + (articles === 1 ? " article" : " articles");
      },
      citation: function (n, title) {
        return "Source " + n + ": " + title;
      },
      hint: "Click a number to see its source.",
      source: "Source",
      closeSource: "Close the source",
      openDocument: "Open the whole article",
      unreachable: function (api) {
        return "Cannot reach the answer service at " + api +
          ". It may be down, or this site may not be allowed to use it.";
      },
      timeout: function (seconds) {
        return "The answer service did not respond within " + seconds + " seconds.";
      },
      refused: function (status, detail) {
        return "The service could not answer (error " + status + ")" + (detail ? ": " + detail : ".");
      },
      misconfigured: function (detail) {
        return "This chat is set up wrongly and cannot answer: " + detail;
      },
      cutOff: "The answer was cut off before it was complete.",
      retry: "Try again",
      sourceMissing: "The source passage could not be loaded.",
      alsoIn: "also in:",
      // The server's wording of a "related" answer (qa.answer.extractive.RELATED).
      related: "The archive may not answer this directly. The closest passages:",
      relatedPassages: "The closest passages",
    },
    ar: {
      title: "اسأل الأرشيف",
      launcher: "اسأل الأرشيف",
      openChat: "افتح محادثة الأرشيف",
      closeChat: "أغلق المحادثة",
      newChat: "محادثة جديدة",
      inputLabel: "سؤالك",
      placeholder: "اكتب سؤالك…",
      keys: "Enter يرسل السؤال، وShift+Enter يضيف سطرًا، وEscape يغلق المحادثة.",
      send: "إرسال",
      conversation: "المحادثة",
      welcome:
        "اسأل عن أخبار الأرشيف بالعربية أو بالإنجليزية. الإجابات اقتباسات من المقالات؛ " +
        "انقر على الرقم لترى المصدر.",
      you: "أنت",
      assistant: "الأرشيف",
      typing: "جارٍ البحث في الأرشيف…",
      found: function (passages, articles) {
        return "عُثر على " + passages + " مقطعًا في " + articles + " مقالة";
      },
      citation: function (n, title) {
        return "المصدر " + n + ": " + title;
      },
      hint: "انقر على الرقم لترى مصدره.",
      source: "المصدر",
      closeSource: "أغلق المصدر",
      openDocument: "افتح المقالة كاملة",
      unreachable: function (api) {
        return "تعذّر الوصول إلى خدمة الإجابة في " + api +
          ". ربما تكون متوقفة، أو أن هذا الموقع غير مسموح له باستخدامها.";
      },
      timeout: function (seconds) {
        return "لم تستجب خدمة الإجابة خلال " + seconds + " ثانية.";
      },
      refused: function (status, detail) {
        return "تعذّرت الإجابة (خطأ " + status + ")" + (detail ? ": " + detail : ".");
      },
      misconfigured: function (detail) {
        return "إعداد هذه المحادثة خاطئ فلا يمكنها الإجابة: " + detail;
      },
      cutOff: "انقطعت الإجابة قبل اكتمالها.",
      retry: "أعد المحاولة",
      sourceMissing: "تعذّر تحميل مقطع المصدر.",
      alsoIn: "ورد أيضًا في:",
      related: "قد لا يجيب الأرشيف عن هذا مباشرة. أقرب المقاطع:",
      relatedPassages: "أقرب المقاطع",
    },
  };

  // How much of a related passage is shown in the list (code points); its link opens it all.
  var EXCERPT_CHARS = 220;

  // An Arabic letter: the "also in" label follows the answer's language, not the widget's.
  var ARABIC_LETTER = /[\u0600-\u06ff\u0750-\u077f\u08a0-\u08ff\ufb50-\ufdff\ufe70-\ufeff]/;

  var CSS = [
    ":host { all: initial; }",
    // The page's rules can match the host element, and what the host inherits flows
    // into the shadow tree: start the widget's own tree from initial values.
    ".root { all: initial; display: block;",
    "  --accent: #0b6e4f; --accent-ink: #fff; --ink: #1d2430; --muted: #5b6574; --line: #dde1e7;",
    "  --bubble: #f1f3f6; --mine: #e3f1ea; --danger: #a3231f;",
    '  font-family: "Noto Sans Arabic", "Segoe UI", Tahoma, system-ui, sans-serif;',
    "  font-size: 15px; line-height: 1.5; color: var(--ink); }",
    ".root *, .root *::before, .root *::after { box-sizing: border-box; }",
    ".launcher { position: fixed; inset-block-end: 20px; inset-inline-end: 20px; z-index: 2147483000;",
    "  display: inline-flex; align-items: center; gap: 8px; padding: 12px 18px; border: 0; border-radius: 999px;",
    "  background: var(--accent); color: var(--accent-ink); font: inherit; font-weight: 600; cursor: pointer;",
    "  box-shadow: 0 6px 20px rgba(0,0,0,.2); }",
    ".launcher svg { width: 20px; height: 20px; fill: currentColor; }",
    ".panel { position: fixed; inset-block-end: 84px; inset-inline-end: 20px; z-index: 2147483000;",
    "  width: min(420px, calc(100vw - 24px)); height: min(760px, calc(100vh - 104px));",
    "  display: flex; flex-direction: column; background: #fff; border: 1px solid var(--line);",
    "  border-radius: 14px; box-shadow: 0 12px 40px rgba(0,0,0,.22); overflow: hidden; }",
    ".panel[hidden] { display: none; }",
    "header { display: flex; align-items: center; gap: 6px; padding: 10px 12px;",
    "  background: var(--accent); color: var(--accent-ink); }",
    "h2 { flex: 1; margin: 0; font-size: 16px; font-weight: 700; }",
    "header button { border: 1px solid rgba(255,255,255,.5); background: transparent; color: inherit;",
    "  border-radius: 8px; padding: 4px 10px; font: inherit; font-size: 13px; cursor: pointer; }",
    "header button.close { font-size: 18px; line-height: 1; padding: 4px 9px; }",
    ".log { flex: 1; overflow-y: auto; padding: 14px 12px; display: flex; flex-direction: column; gap: 10px;",
    "  background: #fafbfc; }",
    ".msg { max-width: 92%; padding: 9px 12px; border-radius: 12px; background: var(--bubble);",
    '  font-family: "Noto Naskh Arabic", "Noto Sans Arabic", "Segoe UI", Tahoma, sans-serif;',
    "  font-size: 16px; line-height: 1.75; }",
    ".msg.user { align-self: flex-end; background: var(--mine); }",
    ".msg.bot { align-self: flex-start; }",
    ".msg.intro { color: var(--muted); font-size: 14px; background: transparent; border: 1px dashed var(--line); }",
    ".who { display: block; font-family: system-ui, sans-serif; font-size: 11px; font-weight: 700;",
    "  color: var(--muted); margin-block-end: 2px; }",
    ".text { margin: 0; white-space: pre-wrap; overflow-wrap: anywhere; text-align: start; unicode-bidi: plaintext; }",
    ".hint:has(~ .source) { display: none; }",
    ".status, .hint { margin: 4px 0 0; font-family: system-ui, sans-serif; font-size: 12px; color: var(--muted); }",
    ".typing { display: inline-flex; gap: 4px; padding: 6px 2px; }",
    ".typing span { width: 7px; height: 7px; border-radius: 50%; background: var(--muted);",
    "  animation: qa-blink 1.2s infinite ease-in-out; }",
    ".typing span:nth-child(2) { animation-delay: .2s; } .typing span:nth-child(3) { animation-delay: .4s; }",
    "@keyframes qa-blink { 0%, 80%, 100% { opacity: .25; } 40% { opacity: 1; } }",
    "@media (prefers-reduced-motion: reduce) { .typing span { animation: none; opacity: .6; } }",
    ".cite { display: inline-block; min-width: 1.6em; margin-inline: 3px; padding: 0 5px; border: 1px solid var(--accent);",
    "  border-radius: 6px; background: #fff; color: var(--accent); font: 700 12px/1.5 system-ui, sans-serif;",
    "  vertical-align: super; cursor: pointer; }",
    ".cite[aria-expanded=true] { background: var(--accent); color: var(--accent-ink); }",
    ".source { margin-block-start: 8px; padding: 8px 10px; border: 1px solid var(--line); border-radius: 10px; background: #fff; }",
    ".source-head { display: flex; gap: 6px; align-items: flex-start; }",
    ".source-title { flex: 1; margin: 0; font-size: 14px; font-weight: 700; line-height: 1.6; }",
    ".source-head button { border: 0; background: transparent; color: var(--muted); font-size: 16px; cursor: pointer; }",
    ".passage { margin: 6px 0; max-height: 9.5em; overflow-y: auto; white-space: pre-wrap; font-size: 15px;",
    "  line-height: 1.8; unicode-bidi: plaintext; text-align: start; }",
    "mark { background: #ffe27a; color: inherit; border-radius: 3px; box-shadow: 0 0 0 2px #ffe27a; }",
    ".source a { font-family: system-ui, sans-serif; font-size: 13px; color: var(--accent); }",
    ".also-in { margin: 4px 0 0; font-size: 13px; color: var(--muted); }",
    ".also-in a { color: var(--accent); margin-inline-start: 4px; }",
    // A related answer: its line in a quieter voice than an answer's, then its passages
    // as a list of sources (cards with a grey edge), never in the answer's bubble text.
    "[data-qa-outcome=related] [data-qa-answer-text] { color: var(--muted); font-family: system-ui, sans-serif;",
    "  font-size: 14px; }",
    ".related-passages { list-style: none; margin: 6px 0 0; padding: 0; display: flex; flex-direction: column; gap: 6px; }",
    ".related-passage { padding: 6px 10px; border: 1px solid var(--line); border-inline-start: 3px solid var(--muted);",
    "  border-radius: 8px; background: #fff; }",
    ".related-title { margin: 0; font-family: system-ui, sans-serif; font-size: 13px; font-weight: 700; }",
    ".related-excerpt { margin: 2px 0; font-size: 14px; line-height: 1.7; color: var(--ink); white-space: pre-wrap;",
    "  overflow-wrap: anywhere; unicode-bidi: plaintext; text-align: start; }",
    ".related-passage a { font-family: system-ui, sans-serif; font-size: 12px; color: var(--accent); }",
    ".error { margin: 6px 0 0; color: var(--danger); font-family: system-ui, sans-serif; font-size: 14px; }",
    ".retry { margin-block-start: 6px; padding: 5px 12px; border: 1px solid var(--danger); border-radius: 8px;",
    "  background: #fff; color: var(--danger); font: inherit; font-family: system-ui, sans-serif; cursor: pointer; }",
    "form { display: flex; gap: 8px; padding: 10px; border-top: 1px solid var(--line); background: #fff; }",
    "textarea { flex: 1; resize: none; min-height: 44px; max-height: 120px; padding: 8px 10px; border: 1px solid #b9c0ca;",
    '  border-radius: 10px; font-family: "Noto Naskh Arabic", "Noto Sans Arabic", "Segoe UI", Tahoma, sans-serif;',
    "  font-size: 15px; line-height: 1.5; color: var(--ink); background: #fff; unicode-bidi: plaintext; }",
    "form button { padding: 0 16px; border: 0; border-radius: 10px; background: var(--accent); color: var(--accent-ink);",
    "  font: inherit; font-weight: 600; cursor: pointer; }",
    "form button:disabled { opacity: .55; cursor: default; }",
    "button:focus-visible, textarea:focus-visible, a:focus-visible { outline: 3px solid #f0a500; outline-offset: 2px; }",
    ".sr-only { position: absolute; width: 1px; height: 1px; margin: -1px; padding: 0; overflow: hidden;",
    "  clip: rect(0 0 0 0); white-space: nowrap; border: 0; }",
  ].join("\n");

  var CHAT_ICON =
    "M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4H4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z";

  var counter = 0;

  /** Make an element; ``text`` always becomes a text node, never markup. */
  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (name) {
        node.setAttribute(name, attrs[name]);
      });
    }
    if (text !== undefined && text !== null) {
      node.textContent = String(text);
    }
    return node;
  }

  /** The start of ``text`` on one line, cut at a word within EXCERPT_CHARS code points (then "…"). */
  function excerpt(text) {
    var points = codePoints(String(text || "").replace(/\s+/g, " ").trim());
    if (points.length <= EXCERPT_CHARS) {
      return points.join("");
    }
    var cut = points.slice(0, EXCERPT_CHARS).join("");
    var space = cut.lastIndexOf(" ");
    return (space > 0 ? cut.slice(0, space) : cut) + "…";
  }

  /** Code points, so that offsets computed in Python (str indices) slice the same way. */
  function codePoints(text) {
    return Array.from(text);
  }

  /**
   * ``value`` with every lone surrogate in its strings (keys too) replaced by U+FFFD:
   * JSON.stringify would write one as a "\ud83d" escape, and the server refuses that body (400).
   */
  function wellFormed(value) {
    if (typeof value === "string") {
      return value.replace(/[\ud800-\udbff][\udc00-\udfff]|[\ud800-\udfff]/g, function (unit) {
        return unit.length === 2 ? unit : "\ufffd";
      });
    }
    if (Array.isArray(value)) {
      return value.map(wellFormed);
    }
    if (value !== null && typeof value === "object") {
      var copy = Object.create(null); // so that a "__proto__" key stays a key
      Object.keys(value).forEach(function (key) {
        copy[wellFormed(key)] = wellFormed(value[key]);
      });
      return copy;
    }
    return value;
  }

  function WidgetError(kind, status, detail) {
    this.kind = kind;
    this.status = status;
    this.detail = detail;
  }

  /** Parse one server-sent event block into {event, data}. */
  function parseEvent(block) {
    var event = "message";
    var data = [];
    block.split(/\r\n|\r|\n/).forEach(function (line) {
      if (!line || line.charAt(0) === ":") {
        return;
      }
      var colon = line.indexOf(":");
      var field = colon === -1 ? line : line.slice(0, colon);
      var value = colon === -1 ? "" : line.slice(colon + 1);
      if (value.charAt(0) === " ") {
        value = value.slice(1);
      }
      if (field === "event") {
        event = value;
      } else if (field === "data") {
        data.push(value);
      }
    });
    if (!data.length) {
      return null;
    }
    return { event: event, data: JSON.parse(data.join("\n")) };
  }

  function Widget(options) {
    this.api = options.api;
    this.lang = options.lang;
    this.t = STRINGS[options.lang];
    this.title = options.title || this.t.title;
    this.timeoutSeconds = options.timeout;
    this.filters = options.filters;
    this.filtersProblem = options.filtersProblem;
    this.history = [];
    this.controller = null;
    this.current = null;
    this.busy = false;
    this.id = "qa" + ++counter;
    this.build();
  }

  Widget.prototype.build = function () {
    var t = this.t;
    var self = this;
    var host = document.createElement("qa-chat-widget");
    host.setAttribute("data-qa-widget", "");
    host.setAttribute("data-qa-api", this.api);
    var shadow = host.attachShadow({ mode: "open" });
    var style = document.createElement("style");
    style.textContent = CSS;
    shadow.appendChild(style);

    var root = el("div", { class: "root", lang: this.lang, dir: this.lang === "ar" ? "rtl" : "ltr" });

    var launcher = el("button", {
      type: "button",
      class: "launcher",
      "aria-expanded": "false",
      "aria-controls": this.id + "-panel",
      "aria-label": t.openChat,
      "data-qa-launcher": "",
    });
    var svgNS = "http://www.w3.org/2000/svg";
    var svg = document.createElementNS(svgNS, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    var path = document.createElementNS(svgNS, "path");
    path.setAttribute("d", CHAT_ICON);
    svg.appendChild(path);
    launcher.appendChild(svg);
    launcher.appendChild(el("span", null, t.launcher));

    var panel = el("section", {
      class: "panel",
      id: this.id + "-panel",
      role: "dialog",
      "aria-labelledby": this.id + "-title",
      hidden: "",
    });
    var header = el("header");
    header.appendChild(el("h2", { id: this.id + "-title", dir: "auto" }, this.title));
    var newChat = el("button", { type: "button", "data-qa-new": "" }, t.newChat);
    var close = el("button", { type: "button", class: "close", "aria-label": t.closeChat, "data-qa-close": "" }, "×");
    header.appendChild(newChat);
    header.appendChild(close);

    var log = el("div", { class: "log", role: "region", "aria-label": t.conversation, tabindex: "-1" });
    var announcer = el("div", { class: "sr-only", "aria-live": "polite", "data-qa-announcer": "" });

    var form = el("form", { novalidate: "" });
    var label = el("label", { for: this.id + "-input", class: "sr-only" }, t.inputLabel);
    var keys = el("span", { id: this.id + "-keys", class: "sr-only" }, t.keys);
    var input = el("textarea", {
      id: this.id + "-input",
      rows: "2",
      // The page's direction for the placeholder; what is typed finds its own
      // direction line by line (unicode-bidi: plaintext).
      dir: this.lang === "ar" ? "rtl" : "ltr",
      "aria-describedby": this.id + "-keys",
      placeholder: t.placeholder,
      "data-qa-input": "",
      autocomplete: "off",
    });
    var send = el("button", { type: "submit", "data-qa-send": "" }, t.send);
    form.appendChild(label);
    form.appendChild(keys);
    form.appendChild(input);
    form.appendChild(send);

    panel.appendChild(header);
    panel.appendChild(log);
    panel.appendChild(announcer);
    panel.appendChild(form);
    root.appendChild(panel);
    root.appendChild(launcher);
    shadow.appendChild(root);

    this.host = host;
    this.launcher = launcher;
    this.panel = panel;
    this.log = log;
    this.announcer = announcer;
    this.input = input;
    this.sendButton = send;

    launcher.addEventListener("click", function () {
      if (panel.hidden) {
        self.open();
      } else {
        self.close();
      }
    });
    close.addEventListener("click", function () {
      self.close();
    });
    newChat.addEventListener("click", function () {
      self.reset();
      self.input.focus();
    });
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      self.submit();
    });
    input.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        self.submit();
      }
    });
    root.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && !panel.hidden) {
        event.preventDefault();
        self.close();
      }
    });

    this.intro();
    document.body.appendChild(host);
  };

  Widget.prototype.open = function () {
    this.panel.hidden = false;
    this.launcher.setAttribute("aria-expanded", "true");
    this.launcher.setAttribute("aria-label", this.t.closeChat);
    this.input.focus();
  };

  Widget.prototype.close = function () {
    this.panel.hidden = true;
    this.launcher.setAttribute("aria-expanded", "false");
    this.launcher.setAttribute("aria-label", this.t.openChat);
    this.launcher.focus();
  };

  Widget.prototype.intro = function () {
    var intro = el("div", { class: "msg bot intro", dir: "auto" });
    intro.appendChild(el("p", { class: "text", dir: "auto" }, this.t.welcome));
    this.log.appendChild(intro);
  };

  /** Forget the conversation: stop any answer in flight, clear the turns and the history. */
  Widget.prototype.reset = function () {
    if (this.controller) {
      this.controller.abort();
      this.controller = null;
    }
    this.history = [];
    this.current = null;
    this.setBusy(false);
    this.log.textContent = "";
    this.announcer.textContent = "";
    this.intro();
  };

  Widget.prototype.setBusy = function (busy) {
    this.busy = busy;
    this.sendButton.disabled = busy;
  };

  Widget.prototype.submit = function () {
    var question = this.input.value.trim();
    if (!question || this.busy) {
      return;
    }
    this.input.value = "";
    this.ask(question);
  };

  /** Ask ``question`` as the next turn of the conversation. */
  Widget.prototype.ask = function (question) {
    question = String(question).trim();
    if (!question || this.busy) {
      return;
    }
    if (this.panel.hidden) {
      this.open();
    }
    var user = el("div", { class: "msg user" });
    user.appendChild(el("span", { class: "who" }, this.t.you));
    user.appendChild(el("p", { class: "text", dir: "auto" }, question));
    this.log.appendChild(user);
    // Turns that got an answer go as {question, answer} (a model sees the answers too).
    var history = this.history.slice(-HISTORY_TURNS).map(function (item) {
      // By code points, as the answers: a cut by UTF-16 units can split an emoji.
      var asked = codePoints(item.question).slice(0, HISTORY_CHARS).join("");
      if (!item.answer) {
        return asked;
      }
      return { question: asked, answer: codePoints(item.answer).slice(0, HISTORY_ANSWER_CHARS).join("") };
    });
    var turn = { question: question, history: history, node: el("article", { class: "msg bot", "data-qa-answer": "" }) };
    this.log.appendChild(turn.node);
    this.run(turn);
  };

  /** Send one turn and render its events as they arrive; on failure, offer a retry. */
  Widget.prototype.run = function (turn) {
    var self = this;
    var t = this.t;
    var node = turn.node;
    node.textContent = "";
    node.setAttribute("data-qa-state", "streaming");
    node.setAttribute("aria-busy", "true");
    node.appendChild(el("span", { class: "who" }, t.assistant));
    var typing = el("div", { class: "typing", role: "status" });
    typing.appendChild(el("span", { "aria-hidden": "true" }));
    typing.appendChild(el("span", { "aria-hidden": "true" }));
    typing.appendChild(el("span", { "aria-hidden": "true" }));
    typing.appendChild(el("span", { class: "sr-only" }, t.typing));
    node.appendChild(typing);
    var status = el("p", { class: "status" });
    node.appendChild(status);
    var text = el("p", { class: "text", dir: "auto", "data-qa-answer-text": "" });
    node.appendChild(text);
    this.scrollToEnd();

    var state = { passages: [], citations: [], answer: "", mode: "extractive", outcome: "answered" };
    turn.answer = "";
    this.current = turn;
    if (this.filtersProblem) {
      this.fail(turn, new WidgetError("misconfigured", 0, this.filtersProblem));
      return;
    }
    this.setBusy(true);
    var body = { question: turn.question };
    if (turn.history.length) {
      body.history = turn.history;
    }
    if (this.filters) {
      body.filters = this.filters;
    }

    this.stream(body, function (event, data) {
      if (event === "passages") {
        state.passages = data.passages || [];
        var articles = {};
        state.passages.forEach(function (p) {
          articles[p.doc_id] = true;
        });
        status.textContent = t.found(state.passages.length, Object.keys(articles).length);
      } else if (event === "citations") {
        state.citations = data.citations || [];
      } else if (event === "answer") {
        if (typing.parentNode) {
          typing.remove();
        }
        state.answer += data.text;
        text.appendChild(document.createTextNode(data.text));
        self.scrollToEnd();
      } else if (event === "done") {
        state.answer = data.answer;
        state.mode = data.mode || "extractive";
        // A service from before outcomes said only "found": a refusal then shows as today.
        state.outcome = data.outcome || (data.found === false ? "not_found" : "answered");
        turn.answer = data.answer || "";
        if (typing.parentNode) {
          typing.remove();
        }
        self.finish(turn, state, text);
      } else if (event === "error") {
        throw new WidgetError("refused", data.status_code || 500, data.detail);
      }
    }).then(
      function () {
        if (self.current !== turn) {
          return;
        }
        self.history.push({ question: turn.question, answer: turn.answer });
        self.setBusy(false);
      },
      function (error) {
        if (self.current !== turn || (error && error.kind === "aborted")) {
          return;
        }
        self.setBusy(false);
        self.fail(turn, error);
      }
    );
  };

  /**
   * The final answer: a written ("generated") one with each [n] in its text turned into
   * that citation's marker; a quoted one with a numbered marker after each quote it cites;
   * a related one as the line that says so and the list of its passages.
   */
  Widget.prototype.finish = function (turn, state, text) {
    var node = turn.node;
    var answer = state.answer;
    text.textContent = "";
    node.setAttribute("data-qa-outcome", state.outcome);
    if (state.outcome === "related") {
      this.showRelated(turn, state, text);
      return;
    }
    if (state.mode === "generated") {
      this.placeInline(turn, state, text);
    } else {
      this.placeAfterQuotes(turn, state, text);
    }
    var self = this;
    state.citations.forEach(function (citation) {
      if (citation.also_in && citation.also_in.length) {
        node.appendChild(self.alsoIn(citation, answer));
      }
    });
    if (state.citations.length) {
      node.appendChild(el("p", { class: "hint" }, this.t.hint));
    }
    node.setAttribute("data-qa-state", "done");
    node.removeAttribute("aria-busy");
    this.announcer.textContent = answer;
    this.scrollToEnd();
  };

  /**
   * A related answer: the line that the archive may not answer directly, in the question's
   * language (as the service words it), then the passages as a list of sources, each its
   * title, the start of its text and a link that opens it highlighted in its article. No
   * citation marker: nothing here is presented as the answer.
   */
  Widget.prototype.showRelated = function (turn, state, text) {
    var self = this;
    var node = turn.node;
    var arabic = ARABIC_LETTER.test(turn.question);
    var t = arabic ? STRINGS.ar : STRINGS.en;
    var dir = arabic ? "rtl" : "ltr";
    text.textContent = t.related;
    text.setAttribute("dir", dir);
    var list = el("ul", {
      class: "related-passages",
      // Said outright: some readers drop the list role of a list drawn without bullets.
      role: "list",
      dir: dir,
      lang: arabic ? "ar" : "en",
      "aria-label": t.relatedPassages,
      "data-qa-related-passages": "",
    });
    state.passages.forEach(function (passage, i) {
      var title = passage.title || passage.doc_id;
      var item = el("li", { class: "related-passage", "data-qa-passage": String(i + 1) });
      item.appendChild(el("p", { class: "related-title", dir: "auto" }, title));
      item.appendChild(el("p", { class: "related-excerpt", dir: "auto" }, excerpt(passage.text)));
      item.appendChild(
        el(
          "a",
          {
            href: self.documentUrl(passage),
            target: "_blank",
            rel: "noopener",
            // The visible words first (what a voice user says), then which passage it opens.
            "aria-label": t.openDocument + ": " + title,
            "data-qa-passage-link": "",
          },
          t.openDocument
        )
      );
      list.appendChild(item);
    });
    node.appendChild(list);
    node.setAttribute("data-qa-state", "done");
    node.removeAttribute("aria-busy");
    var articles = {};
    state.passages.forEach(function (p) {
      articles[p.doc_id] = true;
    });
    // The live region reads the line and how many passages follow, not every passage.
    this.announcer.textContent = t.related + " " + t.found(state.passages.length, Object.keys(articles).length);
    this.scrollToEnd();
    // The list is often taller than the log: keep its first line (what the list is) in view.
    var top = node.offsetTop - this.log.offsetTop - 8;
    if (this.log.scrollTop > top) {
      this.log.scrollTop = top;
    }
  };

  /**
   * Under a citation of a syndicated story, the other copies it stands for: "also in:" (in
   * the answer's language) and a link to each, to its address or else to its article page.
   */
  // The service's page of the document of a passage or citation, its span highlighted.
  Widget.prototype.documentUrl = function (span) {
    return (
      this.api + "/documents/" + encodeURIComponent(span.doc_id) + "?start=" + span.start + "&end=" + span.end +
      "#qa-highlight"
    );
  };

  Widget.prototype.alsoIn = function (citation, answer) {
    var self = this;
    var arabic = ARABIC_LETTER.test(answer);
    var label = (arabic ? STRINGS.ar : STRINGS.en).alsoIn;
    var line = el("p", { class: "also-in", "data-qa-also-in": String(citation.n), dir: arabic ? "rtl" : "ltr" });
    line.appendChild(el("span", null, "[" + citation.n + "] " + label));
    citation.also_in.forEach(function (copy, i) {
      var href = self.api + "/documents/" + encodeURIComponent(copy.doc_id);
      var text = copy.doc_id;
      if (copy.url) {
        try {
          var parsed = new URL(copy.url);
          if (parsed.protocol === "http:" || parsed.protocol === "https:") {
            href = parsed.href;
            text = parsed.hostname;
          }
        } catch (e) {
          // Not an address: the copy's article page, named by its id.
        }
      }
      var link = el(
        "a",
        { href: href, target: "_blank", rel: "noopener", title: copy.title || copy.doc_id, "data-qa-copy": copy.doc_id },
        text
      );
      if (i) {
        line.appendChild(document.createTextNode(arabic ? "،" : ","));
      }
      line.appendChild(link);
    });
    return line;
  };

  /** A written answer: each [n] of a known citation becomes its marker; other text stays as is. */
  Widget.prototype.placeInline = function (turn, state, text) {
    var self = this;
    var answer = state.answer;
    var byNumber = {};
    state.citations.forEach(function (citation) {
      byNumber[String(citation.n)] = citation;
    });
    var pattern = /\[(\d+)\]/g;
    var cursor = 0;
    var match;
    while ((match = pattern.exec(answer))) {
      var citation = Object.prototype.hasOwnProperty.call(byNumber, match[1]) ? byNumber[match[1]] : null;
      if (!citation) {
        continue;
      }
      text.appendChild(document.createTextNode(answer.slice(cursor, match.index)));
      text.appendChild(self.marker(turn, citation, state.passages));
      cursor = match.index + match[0].length;
    }
    text.appendChild(document.createTextNode(answer.slice(cursor)));
  };

  /** A quoted answer: a numbered marker after each quote it cites (at the end if not found). */
  Widget.prototype.placeAfterQuotes = function (turn, state, text) {
    var self = this;
    var answer = state.answer;
    var cursor = 0;
    var unplaced = [];
    state.citations.forEach(function (citation) {
      var at = answer.indexOf(citation.quote, cursor);
      if (at === -1) {
        unplaced.push(citation);
        return;
      }
      var end = at + citation.quote.length;
      text.appendChild(document.createTextNode(answer.slice(cursor, end)));
      text.appendChild(self.marker(turn, citation, state.passages));
      cursor = end;
    });
    text.appendChild(document.createTextNode(answer.slice(cursor)));
    unplaced.forEach(function (citation) {
      text.appendChild(self.marker(turn, citation, state.passages));
    });
  };

  Widget.prototype.marker = function (turn, citation, passages) {
    var self = this;
    var button = el(
      "button",
      {
        type: "button",
        class: "cite",
        "data-qa-citation": String(citation.n),
        "aria-expanded": "false",
        "aria-label": this.t.citation(citation.n, citation.title),
        title: citation.title,
      },
      String(citation.n)
    );
    button.addEventListener("click", function () {
      self.toggleSource(turn, button, citation, passages);
    });
    return button;
  };

  /** Show (or hide) the cited passage under the answer, the quote highlighted. */
  Widget.prototype.toggleSource = function (turn, button, citation, passages) {
    var self = this;
    var node = turn.node;
    var open = node.querySelector(".source");
    var wasOpen = button.getAttribute("aria-expanded") === "true";
    if (open) {
      open.remove();
    }
    Array.prototype.forEach.call(node.querySelectorAll(".cite"), function (other) {
      other.setAttribute("aria-expanded", "false");
    });
    if (wasOpen) {
      return;
    }
    button.setAttribute("aria-expanded", "true");
    var card = el("div", { class: "source", "data-qa-source": String(citation.n), role: "group" });
    card.setAttribute("aria-label", this.t.citation(citation.n, citation.title));
    var head = el("div", { class: "source-head" });
    head.appendChild(el("p", { class: "source-title", dir: "auto" }, citation.title || citation.doc_id));
    var closeButton = el("button", { type: "button", "aria-label": this.t.closeSource }, "×");
    closeButton.addEventListener("click", function () {
      card.remove();
      button.setAttribute("aria-expanded", "false");
      button.focus();
    });
    head.appendChild(closeButton);
    card.appendChild(head);
    var passageNode = el("p", { class: "passage", dir: "auto" });
    card.appendChild(passageNode);
    var link = el(
      "a",
      {
        href: this.documentUrl(citation),
        target: "_blank",
        rel: "noopener",
        "data-qa-document-link": "",
      },
      this.t.openDocument
    );
    card.appendChild(link);
    node.appendChild(card);

    var passage = passages.filter(function (p) {
      return p.doc_id === citation.doc_id && p.start <= citation.start && citation.end <= p.end;
    })[0];
    if (passage) {
      this.fillPassage(passageNode, passage.text, passage.start, citation);
    } else {
      // Not among the retrieved passages: take the quote's surroundings from the article.
      fetch(this.api + "/api/documents/" + encodeURIComponent(citation.doc_id), { credentials: "omit" })
        .then(function (response) {
          if (!response.ok) {
            throw new Error(String(response.status));
          }
          return response.json();
        })
        .then(function (doc) {
          var points = codePoints(doc.text);
          var from = Math.max(0, citation.start - 300);
          var to = Math.min(points.length, citation.end + 300);
          self.fillPassage(passageNode, points.slice(from, to).join(""), from, citation);
        })
        .catch(function () {
          passageNode.textContent = self.t.sourceMissing;
        });
    }
  };

  Widget.prototype.fillPassage = function (node, text, offset, citation) {
    var points = codePoints(text);
    var start = citation.start - offset;
    var end = citation.end - offset;
    node.textContent = "";
    node.appendChild(document.createTextNode(points.slice(0, start).join("")));
    node.appendChild(el("mark", { "data-qa-highlight": "" }, points.slice(start, end).join("")));
    node.appendChild(document.createTextNode(points.slice(end).join("")));
    var mark = node.querySelector("mark");
    // Scroll the passage box (only it) so that the highlight is in view.
    node.scrollTop = Math.max(0, mark.offsetTop - node.offsetTop - 24);
    var log = this.log;
    var card = node.parentNode;
    var below = card.offsetTop + card.offsetHeight - (log.scrollTop + log.clientHeight);
    if (below > 0) {
      log.scrollTop += below + 8;
    }
  };

  Widget.prototype.fail = function (turn, error) {
    var self = this;
    var t = this.t;
    var node = turn.node;
    var message;
    if (error && error.kind === "timeout") {
      message = t.timeout(this.timeoutSeconds);
    } else if (error && error.kind === "refused") {
      message = t.refused(error.status, error.detail);
    } else if (error && error.kind === "misconfigured") {
      message = t.misconfigured(error.detail);
    } else if (error && error.kind === "cut") {
      message = t.cutOff;
    } else {
      message = t.unreachable(this.api);
    }
    Array.prototype.forEach.call(node.querySelectorAll(".typing, .status"), function (child) {
      child.remove();
    });
    node.setAttribute("data-qa-state", "error");
    node.removeAttribute("aria-busy");
    node.appendChild(el("p", { class: "error", role: "alert", dir: "auto", "data-qa-error": "" }, message));
    var retry = el("button", { type: "button", class: "retry", "data-qa-retry": "" }, t.retry);
    retry.addEventListener("click", function () {
      self.run(turn);
      self.input.focus();
    });
    node.appendChild(retry);
    this.scrollToEnd();
  };

  Widget.prototype.scrollToEnd = function () {
    this.log.scrollTop = this.log.scrollHeight;
  };

  /**
   * POST the question to /api/ask/stream and call ``onEvent(name, data)`` for each
   * server-sent event. Rejects with a WidgetError: "unreachable", "timeout",
   * "refused" (an HTTP error, with the service's message), "cut" (the stream ended
   * before "done") or "aborted" (a new conversation was started).
   */
  Widget.prototype.stream = function (body, onEvent) {
    var self = this;
    var controller = new AbortController();
    this.controller = controller;
    var timedOut = false;
    var timer = null;
    function arm() {
      clearTimeout(timer);
      timer = setTimeout(function () {
        timedOut = true;
        controller.abort();
      }, self.timeoutSeconds * 1000);
    }
    function failure(kind) {
      if (timedOut) {
        return new WidgetError("timeout");
      }
      if (controller.signal.aborted) {
        return new WidgetError("aborted");
      }
      return new WidgetError(kind);
    }
    arm();
    return fetch(this.api + "/api/ask/stream", {
      method: "POST",
      mode: "cors",
      credentials: "omit",
      headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
      body: JSON.stringify(wellFormed(body)),
      signal: controller.signal,
    })
      .catch(function () {
        throw failure("unreachable");
      })
      .then(function (response) {
        if (!response.ok) {
          return response
            .json()
            .catch(function () {
              return {};
            })
            .then(function (payload) {
              throw new WidgetError("refused", response.status, payload && payload.detail);
            });
        }
        var reader = response.body.getReader();
        var decoder = new TextDecoder();
        var buffer = "";
        var finished = false;
        function pump() {
          arm();
          return reader.read().then(function (chunk) {
            if (chunk.done) {
              return;
            }
            buffer += decoder.decode(chunk.value, { stream: true });
            var match;
            while ((match = /\r\n\r\n|\n\n|\r\r/.exec(buffer))) {
              var block = buffer.slice(0, match.index);
              buffer = buffer.slice(match.index + match[0].length);
              var parsed = parseEvent(block);
              if (parsed) {
                onEvent(parsed.event, parsed.data);
                if (parsed.event === "done") {
                  finished = true;
                }
              }
            }
            return pump();
          });
        }
        return pump()
          .catch(function (error) {
            if (error instanceof WidgetError) {
              throw error;
            }
            throw failure("cut");
          })
          .then(function () {
            if (!finished) {
              throw failure("cut");
            }
          });
      })
      .then(
        function () {
          clearTimeout(timer);
          if (self.controller === controller) {
            self.controller = null;
          }
        },
        function (error) {
          clearTimeout(timer);
          if (self.controller === controller) {
            self.controller = null;
          }
          throw error;
        }
      );
  };

  function optionsFrom(tag) {
    var data = tag.dataset;
    var api = data.api || new URL(tag.src, document.baseURI).origin;
    var lang = (data.lang || document.documentElement.lang || "en").toLowerCase().slice(0, 2);
    var timeout = parseFloat(data.timeout || "");
    var filters = null;
    var filtersProblem = "";
    if (data.filters !== undefined) {
      try {
        filters = JSON.parse(data.filters);
      } catch (error) {
        filtersProblem = "data-filters is not JSON (" + error.message + ")";
      }
      if (!filtersProblem && (filters === null || typeof filters !== "object" || Array.isArray(filters))) {
        filtersProblem = "data-filters is not a JSON object";
      }
      if (filtersProblem) {
        filters = null;
        console.error("QA widget: " + filtersProblem + ": " + data.filters);
      }
    }
    return {
      api: api.replace(/\/+$/, ""),
      lang: STRINGS[lang] ? lang : "en",
      title: data.title || "",
      open: data.open === "true",
      timeout: timeout > 0 ? timeout : 30,
      filters: filters,
      filtersProblem: filtersProblem,
    };
  }

  function start() {
    var options = optionsFrom(script);
    var widget = new Widget(options);
    if (options.open) {
      widget.panel.hidden = false;
      widget.launcher.setAttribute("aria-expanded", "true");
      widget.launcher.setAttribute("aria-label", widget.t.closeChat);
    }
    document.addEventListener("click", function (event) {
      var target = event.target && event.target.closest ? event.target.closest("[data-qa-ask]") : null;
      if (target) {
        event.preventDefault();
        widget.ask(target.getAttribute("data-qa-ask") || target.textContent);
      }
    });
    window.QAWidget = {
      open: function () {
        widget.open();
      },
      close: function () {
        widget.close();
      },
      ask: function (question) {
        widget.ask(question);
      },
      reset: function () {
        widget.reset();
      },
    };
  }

  if (document.body) {
    start();
  } else {
    document.addEventListener("DOMContentLoaded", start);
  }
})();
