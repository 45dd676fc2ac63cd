export { DASHBOARD_HTML } from './dashboard-page.ts';
