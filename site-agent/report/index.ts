/** Results you can look at: the HTML report next to every summary, overlay PNGs, console formatting. */
export { formatDistance, tableStyle } from './console-format.ts';
export { overlayPng, CLASS_COLOURS, type OverlaySlice } from './overlay-png.ts';
export { renderReportHtml, writeReportHtml, uplotAssets, type ResultsReport, type ReportChart, type ReportSeries, type ReportTable, type ReportOverlay } from './html-report.ts';
