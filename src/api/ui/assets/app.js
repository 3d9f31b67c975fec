/* pipeline-service dashboard. Reads only the public API; no build step. */
'use strict';
(function () {
  const KEY_STORE = 'pipeline-service.api-key';
  const REFRESH_MS = 30000;
  const RECENT_RUNS = 20;
  const PAGE_SIZE = 25;
  /** Most runs one chart request reads (the API's page maximum). */
  const CHART_LIMIT = 10000;
  const DAY = 86400;
  const RANGES = [['24h', DAY], ['7d', 7 * DAY], ['30d', 30 * DAY], ['90d', 90 * DAY], ['1y', 365 * DAY], ['all', 0]];
  const DEFAULT_RANGE = '30d';
  const FIELDS = ['start_local', 'end_local', 'start_utc', 'end_utc', 'elapsed_seconds', 'elapsed_human',
    'output_file', 'rowcount', 'log_file', 'pid', 'date_code', 'pipeline_name', 'script_name',
    'pipeline_type', 'environment', 'archived_file'];
  const KEY_FIELDS = ['pipeline_name', 'script_name', 'pipeline_type', 'environment'];
  const KEY_PARAMS = ['name', 'script', 'type', 'env'];

  const root = document.documentElement;
  const view = document.getElementById('view');
  const errorBox = document.getElementById('error');
  const updated = document.getElementById('updated');
  const crumb = document.getElementById('crumb');

  /* ---------- small helpers ---------- */

  /** An element with attributes (`class`, `on…` handlers, `data-…`) and children. */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value == null || value === false) continue;
      if (name === 'class') node.className = value;
      else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? '' : value);
    }
    for (const child of children.flat()) {
      if (child != null && child !== false) node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  /** Milliseconds since the epoch of an API datetime; naive values are UTC. */
  function toMs(text) {
    if (text == null) return NaN;
    let value = String(text).replace(/(\.\d{3})\d+/, '$1');
    if (!/([zZ]|[+-]\d\d:?\d\d)$/.test(value)) value += 'Z';
    return Date.parse(value);
  }

  function exactUtc(ms) {
    return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
  }

  /** "12m 3s"-style duration. */
  function human(seconds) {
    if (seconds == null || !isFinite(seconds)) return '–';
    const s = Math.abs(seconds);
    if (s < 10) return `${s.toFixed(1)} s`;
    if (s < 60) return `${Math.round(s)} s`;
    const whole = Math.round(s);
    if (whole < 3600) return `${Math.floor(whole / 60)}m ${whole % 60}s`;
    if (whole < DAY) return `${Math.floor(whole / 3600)}h ${Math.floor((whole % 3600) / 60)}m`;
    return `${Math.floor(whole / DAY)}d ${Math.floor((whole % DAY) / 3600)}h`;
  }

  /** A rounded span: "40 s", "15 min", "1.5 h", "3 d". */
  function about(seconds) {
    const s = Math.abs(seconds);
    if (s < 60) return `${Math.round(s)} s`;
    if (s < 3600) return `${Math.round(s / 60)} min`;
    if (s < 10 * 3600) return `${Number((s / 3600).toFixed(1))} h`;
    if (s < 2 * DAY) return `${Math.round(s / 3600)} h`;
    return `${Math.round(s / DAY)} d`;
  }

  function ago(seconds) {
    if (seconds < 0) return `in ${about(-seconds)}`;
    return seconds < 60 ? 'just now' : `${about(seconds)} ago`;
  }

  function count(n) {
    return n == null || !isFinite(n) ? '–' : Math.round(n).toLocaleString('en-US');
  }

  function css(name) {
    return getComputedStyle(root).getPropertyValue(name).trim();
  }

  function keyOf(group) {
    return JSON.stringify(KEY_FIELDS.map((f) => group[f] ?? null));
  }

  function query(params) {
    const search = new URLSearchParams();
    for (const [name, value] of Object.entries(params)) {
      if (value != null && value !== '') search.set(name, value);
    }
    return search.toString();
  }

  function showError(message) {
    errorBox.textContent = message || '';
    errorBox.hidden = !message;
  }

  /* ---------- the API, with the key asked for once per tab ---------- */

  let keyPrompt = null;
  let keyPrompts = 0;

  function askForKey(problem) {
    if (keyPrompt) return keyPrompt;
    keyPrompts += 1;
    root.dataset.keyPrompts = String(keyPrompts);
    const dialog = document.getElementById('key-dialog');
    const form = document.getElementById('key-form');
    const input = document.getElementById('key-input');
    const note = document.getElementById('key-problem');
    note.textContent = problem || '';
    note.hidden = !problem;
    input.value = '';
    keyPrompt = new Promise((resolve) => {
      const submit = (event) => {
        event.preventDefault();
        const key = input.value.trim();
        if (!key) return;
        sessionStorage.setItem(KEY_STORE, key);
        form.removeEventListener('submit', submit);
        dialog.close();
        keyPrompt = null;
        resolve();
      };
      form.addEventListener('submit', submit);
    });
    dialog.showModal();
    input.focus();
    return keyPrompt;
  }

  // Without a key nothing can be read, so the question cannot be dismissed.
  document.getElementById('key-dialog').addEventListener('cancel', (event) => event.preventDefault());

  /** A successful response to `path`; asks for a key on 401/403 and retries. */
  async function request(path) {
    for (;;) {
      const headers = { Accept: 'application/json' };
      const key = sessionStorage.getItem(KEY_STORE);
      if (key) headers['X-API-Key'] = key;
      const response = await fetch(path, { headers, cache: 'no-store' });
      if (response.status === 401 || response.status === 403) {
        const latest = sessionStorage.getItem(KEY_STORE);
        // Another request was answered with a new key meanwhile: try it.
        if (latest && latest !== key) continue;
        if (key) sessionStorage.removeItem(KEY_STORE);
        await askForKey(key ? 'The service refused that key; check it and try again.' : '');
        continue;
      }
      if (!response.ok) {
        let detail = response.statusText;
        try {
          const body = await response.json();
          detail = typeof body.detail === 'string' ? body.detail : JSON.stringify(body.detail);
        } catch (ignored) { /* not JSON */ }
        throw new Error(`${path.split('?')[0]}: ${response.status} ${detail}`);
      }
      return response;
    }
  }

  async function getJson(path) {
    return (await request(path)).json();
  }

  /** Downloads `path` as a file (with the key, which a plain link cannot send). */
  async function download(path, fallbackName) {
    try {
      const response = await request(path);
      const disposition = response.headers.get('content-disposition') || '';
      const named = /filename="?([^";]+)"?/.exec(disposition);
      const blob = await response.blob();
      const url = URL.createObjectURL(blob);
      const link = el('a', { href: url, download: named ? named[1] : fallbackName });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    } catch (error) {
      showError(error.message);
    }
  }

  /* ---------- routing: everything a view shows is in the URL ---------- */

  function route() {
    const p = new URLSearchParams(location.search);
    if (p.get('view') === 'pipeline') {
      const range = RANGES.some(([name]) => name === p.get('range')) ? p.get('range') : DEFAULT_RANGE;
      return { view: 'pipeline', key: KEY_PARAMS.map((name) => p.get(name)), range };
    }
    return { view: 'overview', env: p.get('env') || '', type: p.get('type') || '', q: p.get('q') || '', status: p.get('status') || '' };
  }

  function urlOf(state) {
    const params = state.view === 'pipeline'
      ? Object.assign({ view: 'pipeline' }, Object.fromEntries(KEY_PARAMS.map((name, i) => [name, state.key[i]])),
        { range: state.range === DEFAULT_RANGE ? '' : state.range })
      : { env: state.env, type: state.type, q: state.q, status: state.status };
    const search = query(params);
    return search ? `ui?${search}` : 'ui';
  }

  function go(state, replace) {
    history[replace ? 'replaceState' : 'pushState'](null, '', urlOf(state));
    render();
  }

  let current = null;

  function render() {
    if (current) current.leave();
    const state = route();
    current = state.view === 'pipeline' ? pipelinePage(state) : overviewPage(state);
    refreshNow(true);
  }

  /* ---------- refresh every 30 s, keeping what the reader looks at ---------- */

  let timer = null;
  let refreshes = 0;

  async function refreshNow(first) {
    clearTimeout(timer);
    const page = current;
    root.dataset.state = 'loading';
    try {
      await page.load(first);
      if (page !== current) return;
      showError('');
      refreshes += 1;
      root.dataset.refreshes = String(refreshes);
      updated.textContent = `updated ${new Date().toISOString().slice(11, 19)} UTC`;
    } catch (error) {
      if (page === current) showError(error.message);
    } finally {
      if (page === current) {
        root.dataset.state = 'ready';
        root.dataset.view = page.name;
        timer = setTimeout(() => { if (!document.hidden) refreshNow(false); }, REFRESH_MS);
      }
    }
  }

  document.addEventListener('visibilitychange', () => {
    if (!document.hidden && root.dataset.state === 'ready') refreshNow(false);
  });

  /* ---------- charts (uPlot) ---------- */

  /** A tiny line of `values` with anomalies marked, drawn once visible. */
  function sparkline(node, values, marks) {
    node.sparkData = [values.map((_, i) => i), values, marks];
    if (node.plot) node.plot.setData(node.sparkData);
    else sparkObserver.observe(node);
  }

  const sparkObserver = new IntersectionObserver((entries) => {
    for (const entry of entries) {
      if (!entry.isIntersecting || entry.target.plot) continue;
      sparkObserver.unobserve(entry.target);
      const bad = css('--bad');
      entry.target.plot = new uPlot({
        width: 120, height: 30, pxAlign: false, padding: [4, 4, 4, 4],
        cursor: { show: false }, select: { show: false }, legend: { show: false },
        scales: { x: { time: false } },
        axes: [{ show: false }, { show: false }],
        series: [{},
          { stroke: css('--series'), width: 1.5, points: { show: false } },
          { stroke: bad, paths: () => null, points: { show: true, size: 6, stroke: bad, fill: bad } }],
      }, entry.target.sparkData, entry.target);
    }
  }, { rootMargin: '200px' });

  /** A full-width chart whose container records how many points it drew. */
  function chart(node, options, data) {
    const plot = new uPlot(Object.assign({
      width: Math.max(node.clientWidth, 200),
      height: 200,
      legend: { show: false },
      cursor: { drag: { x: false, y: false } },
      hooks: {
        draw: [(u) => {
          node.dataset.points = String(u.data[1].filter((v) => v != null).length);
        }],
      },
    }, options), data, node);
    node.plot = plot;
    return plot;
  }

  function axis(values) {
    const grid = { stroke: css('--grid'), width: 1 };
    return Object.assign({ stroke: css('--muted'), grid, ticks: grid }, values ? { values } : {});
  }

  window.addEventListener('resize', () => {
    for (const node of document.querySelectorAll('.plot')) {
      if (node.plot) node.plot.setSize({ width: Math.max(node.clientWidth, 200), height: 200 });
    }
  });

  matchMedia('(prefers-color-scheme: dark)').addEventListener('change', render);

  /* ---------- status of a pipeline ---------- */

  function lastRun(group) {
    return group.recent && group.recent.length ? group.recent[group.recent.length - 1] : null;
  }

  /** [class, text] chips: what is wrong, or OK. */
  function chips(group) {
    const found = [];
    if (group.stale) found.push(['late', 'late']);
    if (group.duration_anomaly) found.push(['duration', 'duration anomaly']);
    if (group.rowcount_anomaly) found.push(['rowcount', 'rowcount anomaly']);
    const last = lastRun(group);
    if (last && last.rowcount === 0) found.push(['zero', 'zero rows']);
    return found.length ? found : [['ok', 'OK']];
  }

  function chipNodes(group) {
    return chips(group).map(([kind, text]) => el('span', { class: `chip ${kind}` }, text));
  }

  function isProblem(group) {
    return chips(group)[0][0] !== 'ok';
  }

  function schedule(group) {
    const every = group.typical_interval_seconds;
    if (!every) return `${count(group.runs)} run${group.runs === 1 ? '' : 's'}, no cadence yet`;
    const overdue = group.seconds_since_last_run - every;
    return `every ~${about(every)}${overdue > 0 ? ` · overdue by ${about(overdue)}` : ''}`;
  }

  function describeKey(group) {
    return [group.environment, group.pipeline_type, group.script_name].filter((v) => v != null).join(' · ');
  }

  /* ---------- overview: problems first ---------- */

  function overviewPage(state) {
    crumb.textContent = '';
    document.title = 'Pipelines';
    let groups = [];
    let dayRuns = null;
    let selected = null;
    let active = true;
    const rows = new Map();

    const cardValues = {};
    const card = (name, label, status) => {
      const value = el('span', { class: 'value' }, '–');
      cardValues[name] = value;
      const body = [value, el('span', { class: 'label' }, label)];
      if (status == null) return el('div', { class: 'card', id: `card-${name}` }, body);
      return el('button', {
        type: 'button', class: `card ${name}`, id: `card-${name}`,
        'aria-pressed': String(state.status === status),
        onclick: () => { state.status = state.status === status ? '' : status; update(); },
      }, body);
    };
    const envSelect = el('select', { id: 'filter-env', 'aria-label': 'Environment', onchange: () => { state.env = envSelect.value; update(); } });
    const typeSelect = el('select', { id: 'filter-type', 'aria-label': 'Pipeline type', onchange: () => { state.type = typeSelect.value; update(); } });
    const search = el('input', {
      id: 'filter-q', type: 'search', placeholder: 'Search pipelines  ( / )', 'aria-label': 'Search pipelines',
      value: state.q, oninput: () => { state.q = search.value; update(); },
    });
    const tbody = el('tbody');
    const empty = el('p', { class: 'empty', hidden: true }, 'No pipeline matches these filters.');
    const table = el('table', { id: 'pipelines' },
      el('thead', {}, el('tr', {},
        el('th', {}, 'Status'), el('th', {}, 'Pipeline'), el('th', {}, 'Last run'), el('th', {}, 'Schedule'),
        el('th', {}, 'Duration (last · p50 · p95)'), el('th', {}, 'Rows (last · median)'), el('th', { class: 'num' }, 'Runs'))),
      tbody);
    view.replaceChildren(
      el('div', { class: 'cards' },
        card('pipelines', 'pipelines', ''), card('problem', 'with problems', 'problems'),
        card('late', 'late', 'late'), card('anomalous', 'anomalous', 'anomaly'), card('day', 'runs in 24 h')),
      el('div', { class: 'filters' }, envSelect, typeSelect, search),
      el('div', { class: 'panel scroll' }, table, empty));

    function options(select, label, values, chosen) {
      const wanted = [''].concat([...values].sort());
      if (chosen && !wanted.includes(chosen)) wanted.push(chosen);
      const texts = wanted.map((v) => v || label);
      if (select.options.length !== wanted.length || [...select.options].some((o, i) => o.value !== wanted[i])) {
        select.replaceChildren(...wanted.map((v, i) => el('option', { value: v }, texts[i])));
      }
      select.value = chosen;
    }

    function visible(group) {
      if (state.env && group.environment !== state.env) return false;
      if (state.type && group.pipeline_type !== state.type) return false;
      if (state.q) {
        const text = KEY_FIELDS.map((f) => group[f] || '').join(' ').toLowerCase();
        if (!state.q.toLowerCase().split(/\s+/).every((word) => text.includes(word))) return false;
      }
      const status = chips(group).map(([kind]) => kind);
      if (state.status === 'problems') return status[0] !== 'ok';
      if (state.status === 'late') return status.includes('late');
      if (state.status === 'anomaly') return status.includes('duration') || status.includes('rowcount');
      return true;
    }

    function row(group) {
      const key = keyOf(group);
      let entry = rows.get(key);
      if (!entry) {
        const link = el('a', { href: urlOf(pipelineState(group)), onclick: (event) => {
          if (event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
          event.preventDefault();
          open(key);
        } });
        entry = {
          tr: el('tr', { tabindex: '-1', 'data-key': key, 'aria-selected': 'false', onclick: (event) => {
            if (event.target.closest('a')) return;
            open(key);
          }, onfocus: () => select(key, false) }),
          status: el('td', { class: 'status' }),
          link,
          sub: el('span', { class: 'sub' }),
          last: el('td', { class: 'when', 'data-label': 'Last run' }),
          schedule: el('td', { class: 'when', 'data-label': 'Schedule' }),
          duration: el('span', { class: 'figure' }),
          durationSub: el('div', { class: 'sub' }),
          durationSpark: el('span', { class: 'spark' }),
          rows: el('span', { class: 'figure' }),
          rowsSub: el('div', { class: 'sub' }),
          rowsSpark: el('span', { class: 'spark' }),
          runs: el('td', { class: 'num wide-only' }),
        };
        entry.tr.append(entry.status,
          el('td', {}, el('div', { class: 'name' }, link), entry.sub),
          entry.last, entry.schedule,
          el('td', { 'data-label': 'Duration' }, el('div', { class: 'line' }, entry.duration, entry.durationSpark), entry.durationSub),
          el('td', { 'data-label': 'Rows' }, el('div', { class: 'line' }, entry.rows, entry.rowsSpark), entry.rowsSub),
          entry.runs);
        rows.set(key, entry);
      }
      const last = lastRun(group);
      const lastMs = toMs(group.last_run);
      entry.group = group;
      entry.status.replaceChildren(...chipNodes(group));
      entry.link.textContent = group.pipeline_name ?? '(no name)';
      entry.sub.textContent = describeKey(group);
      entry.last.textContent = ago(group.seconds_since_last_run);
      entry.last.title = exactUtc(lastMs);
      entry.schedule.textContent = schedule(group);
      entry.duration.textContent = last ? human(last.elapsed_seconds) : '–';
      entry.durationSub.textContent = `p50 ${human(group.p50_elapsed_seconds)} · p95 ${human(group.p95_elapsed_seconds)}`;
      entry.rows.textContent = last ? count(last.rowcount) : '–';
      entry.rowsSub.textContent = `median ${count(group.median_rowcount)}`;
      entry.runs.textContent = count(group.runs);
      const recent = group.recent || [];
      sparkline(entry.durationSpark, recent.map((r) => r.elapsed_seconds),
        recent.map((r) => (r.duration_anomaly ? r.elapsed_seconds : null)));
      sparkline(entry.rowsSpark, recent.map((r) => r.rowcount),
        recent.map((r) => (r.rowcount_anomaly ? r.rowcount : null)));
      return entry;
    }

    /** Redraws from `groups` and writes the filters into the URL. */
    function update() {
      const shown = groups.filter(visible);
      // Problems first (late, then anomalies, then zero rows), then latest run first.
      const rank = (group) => {
        const kind = chips(group)[0][0];
        return ['late', 'duration', 'rowcount', 'zero', 'ok'].indexOf(kind);
      };
      shown.sort((a, b) => rank(a) - rank(b));
      const focused = document.activeElement;
      const wanted = shown.map((group) => row(group).tr);
      if (wanted.length !== tbody.children.length || wanted.some((tr, i) => tbody.children[i] !== tr)) {
        tbody.replaceChildren(...wanted);
        if (focused && focused !== document.activeElement && tbody.contains(focused)) focused.focus({ preventScroll: true });
      }
      empty.hidden = shown.length > 0;
      const inScope = groups.filter((g) => (!state.env || g.environment === state.env) && (!state.type || g.pipeline_type === state.type));
      cardValues.pipelines.textContent = count(shown.length);
      cardValues.problem.textContent = count(inScope.filter(isProblem).length);
      cardValues.late.textContent = count(inScope.filter((g) => g.stale).length);
      cardValues.anomalous.textContent = count(inScope.filter((g) => g.duration_anomaly || g.rowcount_anomaly).length);
      cardValues.day.textContent = count(dayRuns);
      for (const [status, id] of [['problems', 'problem'], ['late', 'late'], ['anomaly', 'anomalous'], ['', 'pipelines']]) {
        document.getElementById(`card-${id}`).setAttribute('aria-pressed', String(state.status === status));
      }
      options(envSelect, 'All environments', new Set(groups.map((g) => g.environment).filter((v) => v != null)), state.env);
      options(typeSelect, 'All types', new Set(groups.map((g) => g.pipeline_type).filter((v) => v != null)), state.type);
      if (!active) return;
      history.replaceState(null, '', urlOf(state));
      lastOverview = state;
      if (selected && !rows.get(selected)?.tr.isConnected) selected = null;
      markSelection();
    }

    let dayScope = null;
    async function countDay() {
      const scope = `${state.env}\u0000${state.type}`;
      if (scope === dayScope && dayRuns != null) return;
      const since = new Date(Date.now() - DAY * 1000).toISOString();
      const answer = await getJson(`get_pipeline_info?${query({ limit: 1, start_utc: since, environment: state.env, pipeline_type: state.type })}`);
      dayRuns = answer.total;
      dayScope = scope;
    }

    const load = async (first) => {
      dayScope = null;
      const [stats] = await Promise.all([getJson(`pipelines/stats?recent=${RECENT_RUNS}`), countDay()]);
      groups = stats.pipelines;
      update();
      if (first && active) performance.mark('overview-ready');
    };

    function markSelection() {
      for (const [key, entry] of rows) entry.tr.setAttribute('aria-selected', String(key === selected));
    }

    function select(key, focus) {
      selected = key;
      markSelection();
      if (focus && key) rows.get(key).tr.focus();
    }

    function move(step) {
      const list = [...tbody.children];
      if (!list.length) return;
      const at = list.findIndex((tr) => tr.dataset.key === selected);
      const next = at < 0 ? (step > 0 ? 0 : list.length - 1) : Math.min(list.length - 1, Math.max(0, at + step));
      select(list[next].dataset.key, true);
      list[next].scrollIntoView({ block: 'nearest' });
    }

    function pipelineState(group) {
      return { view: 'pipeline', key: KEY_FIELDS.map((f) => group[f] ?? null), range: DEFAULT_RANGE };
    }

    function open(key) {
      const entry = rows.get(key);
      if (entry) go(pipelineState(entry.group), false);
    }

    // Recompute the day count when environment or type change.
    const filtersChanged = () => countDay().then(() => update()).catch((e) => showError(e.message));
    envSelect.addEventListener('change', filtersChanged);
    typeSelect.addEventListener('change', filtersChanged);

    return {
      name: 'overview',
      load,
      leave() {
        active = false;
        sparkObserver.disconnect();
      },
      key(event) {
        const inField = event.target.closest('input, select, textarea');
        if (event.key === '/' && !inField) { event.preventDefault(); search.focus(); return true; }
        if (inField) {
          if (event.key === 'Escape') { event.target.blur(); return true; }
          if (event.key === 'ArrowDown' && event.target === search) { event.preventDefault(); move(1); return true; }
          return false;
        }
        if (event.key === 'j' || event.key === 'ArrowDown') { event.preventDefault(); move(1); return true; }
        if (event.key === 'k' || event.key === 'ArrowUp') { event.preventDefault(); move(-1); return true; }
        if (event.key === 'Enter' && selected) { open(selected); return true; }
        return false;
      },
    };
  }

  /* ---------- one pipeline: charts and its runs ---------- */

  function pipelinePage(state) {
    const [name, script, type, env] = state.key;
    const label = name ?? '(no name)';
    crumb.textContent = `› ${label}`;
    document.title = `${label} · Pipelines`;
    const seconds = RANGES.find(([r]) => r === state.range)[1];
    // Fixed while the page is open, so cursors stay valid across refreshes.
    const since = seconds ? new Date(Date.now() - seconds * 1000).toISOString() : '';
    const filters = { pipeline_name: name, script_name: script, pipeline_type: type, environment: env, start_utc: since };
    const missing = KEY_FIELDS.filter((_, i) => state.key[i] == null);
    let active = true;
    let cursors = [''];
    let pageIndex = 0;
    let nextCursor = null;

    const chipBox = el('span', { class: 'chips' });
    const facts = el('dl', { class: 'facts' });
    const rangeButtons = el('div', { class: 'ranges', role: 'group', 'aria-label': 'Time range' },
      RANGES.map(([range]) => el('button', {
        type: 'button', 'aria-pressed': String(range === state.range),
        onclick: () => go(Object.assign({}, state, { range }), true),
      }, range === 'all' ? 'all' : `last ${range}`)));
    const plots = {
      duration: el('div', { class: 'plot', id: 'chart-duration' }),
      rows: el('div', { class: 'plot', id: 'chart-rows' }),
      time: el('div', { class: 'plot', id: 'chart-time' }),
    };
    const chartNote = el('p', { class: 'note', hidden: true });
    const thead = el('thead', {}, el('tr', {}, FIELDS.map((f) => el('th', {}, f))));
    const tbody = el('tbody');
    const position = el('span', { class: 'muted', id: 'runs-position' });
    const newer = el('button', { type: 'button', id: 'runs-newer', onclick: () => page(-1) }, '‹ Newer');
    const older = el('button', { type: 'button', id: 'runs-older', onclick: () => page(1) }, 'Older ›');
    const csv = el('a', { id: 'runs-csv', href: '#', onclick: (event) => {
      event.preventDefault();
      download(csv.getAttribute('href'), 'runs.csv');
    } }, 'CSV of these rows');
    const csvAll = el('a', { id: 'runs-csv-all', href: '#', onclick: (event) => {
      event.preventDefault();
      download(csvAll.getAttribute('href'), 'runs.csv');
    } }, 'CSV of every run in range');

    view.replaceChildren(
      el('div', { class: 'head' },
        el('a', { href: 'ui', onclick: (event) => { event.preventDefault(); back(); } }, '‹ All pipelines'),
        el('h1', {}, label), chipBox,
        el('span', { class: 'muted' }, [env, type, script].filter((v) => v != null).join(' · '))),
      facts,
      rangeButtons,
      el('p', { class: 'note', hidden: !missing.length }, `This pipeline has no ${missing.join(', ')}; the API cannot select by a missing value, so the runs below include those of the same ${KEY_FIELDS.filter((f) => !missing.includes(f)).join(', ')} with any ${missing.join(', ')}.`),
      el('div', { class: 'charts' },
        el('section', { class: 'panel chart' }, el('h2', {}, 'Duration, with the p50–p95 band'), plots.duration),
        el('section', { class: 'panel chart' }, el('h2', {}, 'Rows per run'), plots.rows),
        el('section', { class: 'panel chart' }, el('h2', {}, 'Start time of day (UTC)'), plots.time)),
      chartNote,
      el('section', { class: 'panel' },
        el('div', { class: 'pager' }, newer, older, position, el('span', { class: 'spacer' }), csv, csvAll),
        el('div', { class: 'scroll' }, el('table', { id: 'runs' }, thead, tbody))));

    function fact(term, value, title) {
      return el('div', {}, el('dt', {}, term), el('dd', title ? { title } : {}, value));
    }

    function drawFacts(group, total) {
      if (!group) {
        chipBox.replaceChildren();
        facts.replaceChildren(fact('Runs in range', '0'));
        return;
      }
      chipBox.replaceChildren(...chipNodes(group));
      facts.replaceChildren(
        fact('Runs in range', count(total)),
        fact('Last run', ago(group.seconds_since_last_run), exactUtc(toMs(group.last_run))),
        fact('Schedule', schedule(group)),
        fact('p50 duration', human(group.p50_elapsed_seconds)),
        fact('p95 duration', human(group.p95_elapsed_seconds)),
        fact('Median rows', count(group.median_rowcount)),
        fact('Zero-row runs', count(group.zero_row_runs)));
    }

    function drawCharts(runs, group) {
      const ordered = runs.slice().reverse();
      const xs = ordered.map((r) => toMs(r.start_utc) / 1000);
      const series = css('--series');
      const band = css('--band');
      const p50 = group ? xs.map(() => group.p50_elapsed_seconds) : xs.map(() => null);
      const p95 = group ? xs.map(() => group.p95_elapsed_seconds) : xs.map(() => null);
      const durations = ordered.map((r) => r.elapsed_seconds);
      const rowcounts = ordered.map((r) => r.rowcount);
      const hours = ordered.map((r) => {
        const start = new Date(toMs(r.start_utc));
        return start.getUTCHours() + start.getUTCMinutes() / 60 + start.getUTCSeconds() / 3600;
      });
      for (const node of Object.values(plots)) {
        if (node.plot) node.plot.destroy();
        node.plot = null;
        node.replaceChildren();
      }
      const time = { x: { time: true } };
      chart(plots.duration, {
        scales: time,
        axes: [axis(), Object.assign(axis((u, ticks) => ticks.map(human)), { size: 72 })],
        series: [{},
          { label: 'duration', stroke: series, width: 1.5, points: { show: true, size: 5, fill: series } },
          { label: 'p50', stroke: band, width: 1, dash: [4, 4], points: { show: false } },
          { label: 'p95', stroke: band, width: 1, dash: [4, 4], points: { show: false } }],
        bands: [{ series: [3, 2], fill: band }],
      }, [xs, durations, p50, p95]);
      chart(plots.rows, {
        // Bars start at zero, or their heights would mislead.
        scales: Object.assign({ y: { range: (u, min, max) => [0, max > 0 ? max * 1.05 : 1] } }, time),
        axes: [axis(), Object.assign(axis((u, ticks) => ticks.map((v) => (v >= 1e6 ? `${v / 1e6}M` : v >= 1e3 ? `${v / 1e3}k` : v))), { size: 72 })],
        series: [{}, { label: 'rows', stroke: css('--bars'), fill: css('--bars'), paths: uPlot.paths.bars({ size: [0.7, 24] }), points: { show: false } }],
      }, [xs, rowcounts]);
      chart(plots.time, {
        scales: Object.assign({ y: { range: [0, 24] } }, time),
        axes: [axis(), Object.assign(axis((u, ticks) => ticks.map((v) => `${String(Math.floor(v)).padStart(2, '0')}:00`)), { incrs: [3, 6], size: 72 })],
        series: [{}, { label: 'start', stroke: series, paths: () => null, points: { show: true, size: 6, fill: series } }],
      }, [xs, hours]);
      chartNote.hidden = runs.length < CHART_LIMIT;
      chartNote.textContent = `The charts show the latest ${count(CHART_LIMIT)} runs of this range.`;
    }

    function cell(record, field) {
      const value = record[field];
      if (field === 'archived_file' && value) {
        const box = el('td', { class: 'path', title: value }, value);
        archiveLink(record, box);
        return box;
      }
      const pathLike = field === 'output_file' || field === 'log_file';
      return el('td', pathLike ? { class: 'path', title: value } : (typeof value === 'number' ? { class: 'num' } : {}), value == null ? '' : String(value));
    }

    /** A download link when the service serves the file (it decides, by PIPELINE_ARCHIVE_ROOTS). */
    async function archiveLink(record, box) {
      const path = `pipelines/archived/${encodeURIComponent(record.date_code)}`;
      const headers = {};
      const key = sessionStorage.getItem(KEY_STORE);
      if (key) headers['X-API-Key'] = key;
      try {
        const response = await fetch(path, { method: 'HEAD', headers, cache: 'no-store' });
        if (!response.ok) {
          box.title = `${record.archived_file} (not served: ${response.status === 403 ? 'outside the archive folders' : 'missing'})`;
          return;
        }
        const name = record.archived_file.split('/').pop();
        box.replaceChildren(el('a', { href: path, class: 'archive', onclick: (event) => {
          event.preventDefault();
          download(path, name);
        } }, record.archived_file));
      } catch (ignored) { /* leave the plain path */ }
    }

    async function loadTable() {
      const answer = await getJson(`get_pipeline_info?${query(Object.assign({}, filters, { limit: PAGE_SIZE }))}&cursor=${encodeURIComponent(cursors[pageIndex])}`);
      nextCursor = answer.next_cursor;
      tbody.replaceChildren(...answer.results.map((record) => el('tr', { 'data-date-code': record.date_code }, FIELDS.map((f) => cell(record, f)))));
      if (!answer.results.length) tbody.append(el('tr', {}, el('td', { colspan: FIELDS.length, class: 'empty' }, 'No runs in this range.')));
      const first = pageIndex * PAGE_SIZE;
      position.textContent = answer.count ? `runs ${count(first + 1)}–${count(first + answer.count)} of ${count(answer.total)}` : `0 of ${count(answer.total)}`;
      newer.disabled = pageIndex === 0;
      older.disabled = !nextCursor;
      const page = query(Object.assign({ format: 'csv' }, filters));
      csv.setAttribute('href', `download/pipeline_info?${page}&cursor=${encodeURIComponent(cursors[pageIndex])}&limit=${PAGE_SIZE}`);
      csv.textContent = `CSV of these ${count(answer.count)} rows`;
      csvAll.setAttribute('href', `download/pipeline_info?${page}`);
      return answer.total;
    }

    async function page(step) {
      if (step > 0 && !nextCursor) return;
      if (step < 0 && pageIndex === 0) return;
      if (step > 0) {
        cursors = cursors.slice(0, pageIndex + 1).concat([nextCursor]);
        pageIndex += 1;
      } else {
        pageIndex -= 1;
      }
      root.dataset.state = 'loading';
      try {
        await loadTable();
        showError('');
      } catch (error) {
        showError(error.message);
      } finally {
        root.dataset.state = 'ready';
      }
    }

    function back() {
      go(lastOverview || { view: 'overview', env: '', type: '', q: '', status: '' }, false);
    }

    const load = async () => {
      const [stats, runs, total] = await Promise.all([
        getJson(`pipelines/stats?${query(filters)}`),
        getJson(`get_pipeline_info?${query(Object.assign({}, filters, { limit: CHART_LIMIT, count: 'none' }))}`),
        loadTable(),
      ]);
      const wanted = JSON.stringify(state.key);
      const group = stats.pipelines.find((g) => keyOf(g) === wanted) || null;
      if (!active) return;
      drawFacts(group, total);
      drawCharts(runs.results, group);
      root.dataset.rangeStart = since;
    };

    return {
      name: 'pipeline',
      load,
      leave() {
        active = false;
        for (const node of Object.values(plots)) if (node.plot) node.plot.destroy();
      },
      key(event) {
        if (event.target.closest('input, select, textarea')) return false;
        if (event.key === 'Escape' || event.key === 'u' || event.key === 'Backspace') { back(); return true; }
        if (event.key === 'n') { page(1); return true; }
        if (event.key === 'p') { page(-1); return true; }
        return false;
      },
    };
  }

  /* ---------- keyboard, history, start ---------- */

  /** The overview as last shown, to return to from a pipeline. */
  let lastOverview = null;

  document.addEventListener('keydown', (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (document.querySelector('dialog[open]')) return;
    if (current && current.key(event)) return;
    if (event.target.closest('input, select, textarea')) return;
    if (event.key === 'r') refreshNow(false);
    else if (event.key === '?') document.getElementById('help-dialog').showModal();
  });
  document.getElementById('help-button').addEventListener('click', () => document.getElementById('help-dialog').showModal());
  document.querySelector('#help-dialog [data-close]').addEventListener('click', () => document.getElementById('help-dialog').close());
  document.getElementById('refresh').addEventListener('click', () => refreshNow(false));
  document.querySelector('[data-nav="overview"]').addEventListener('click', (event) => {
    event.preventDefault();
    go({ view: 'overview', env: '', type: '', q: '', status: '' }, false);
  });
  window.addEventListener('popstate', render);

  render();
})();
