/** Types of pages.js for the server, which serves the app's HTML only at these paths. */
export declare const PAGES: Readonly<Record<string, RegExp>>
