// uPlot arrives as a classic script (/dashboard/uPlot.iife.min.js): its UMD global, typed by
// node_modules/uplot/dist/uPlot.d.ts (tsconfig.web.json includes it, allowUmdGlobalAccess).
interface Window {
  /** What the browser tests read: the plots' data (not pixels) and the list's last load. */
  onwardDashboard: { plots: import('./plots.js').Plots | null; listLoads: number };
}
