/* Client-side callbacks of TCP Dashboard (see dashboard/pages/market.py and dashboard/app.py). */
(function () {
    "use strict";
    var CANDLES = 1, VOLUME = 3; /* live trace indices, as in dashboard/figures.py */

    function applyLiveEdits(live, state, figure) {
        var dc = window.dash_clientside;
        if (!live || !state || !figure || live.build !== state.build || !live.edits.length) {
            return dc.no_update;
        }
        var patch = new dc.Patch();
        var newest = null, high = -Infinity, low = Infinity;
        live.edits.forEach(function (edit) {
            var index = edit[0], t = edit[1], values = {open: edit[2], high: edit[3], low: edit[4], close: edit[5]};
            Object.keys(values).forEach(function (name) {
                if (index < 0) {
                    patch.append(["data", CANDLES, name], values[name]);
                } else {
                    patch.assign(["data", CANDLES, name, index], values[name]);
                }
            });
            if (index < 0) {
                patch.append(["data", CANDLES, "x"], t);
                patch.append(["data", VOLUME, "x"], t);
                patch.append(["data", VOLUME, "y"], edit[6]);
            } else {
                patch.assign(["data", VOLUME, "y", index], edit[6]);
            }
            newest = Math.max(newest === null ? t : newest, t);
            high = Math.max(high, edit[3]);
            low = Math.min(low, edit[4]);
        });
        var layout = figure.layout || {};
        var bucket = state.bucket_ms || 60000;
        var xr = layout.xaxis && layout.xaxis.range;
        if (xr && typeof xr[0] === "number" && newest + bucket > xr[1]) {
            var shift = newest + 3 * bucket - xr[1];
            patch.assign(["layout", "xaxis", "range"], [xr[0] + shift, xr[1] + shift]);
        }
        var yr = layout.yaxis && layout.yaxis.range;
        if (yr && (high > yr[1] || low < yr[0])) {
            var pad = (yr[1] - yr[0]) * 0.03;
            patch.assign(["layout", "yaxis", "range"], [Math.min(yr[0], low - pad), Math.max(yr[1], high + pad)]);
        }
        return patch.build();
    }

    function setTheme(theme) {
        document.documentElement.setAttribute("data-bs-theme", theme === "light" ? "light" : "dark");
        return theme !== "light";
    }

    window.dash_clientside = Object.assign({}, window.dash_clientside, {
        tcp: {applyLiveEdits: applyLiveEdits, setTheme: setTheme}
    });
})();
