export { dashboardHtml } from './dashboard-page.ts';
export { SiteActivityTracker, type SiteActivity, type SiteStage } from './site-activity.ts';
