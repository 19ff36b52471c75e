/** The JSON fixtures (made by fixtures/make_fixtures.py from files the pack saved), fresh copies each call. */

import { readFileSync } from "node:fs";

export function fixture(name) {
  return JSON.parse(readFileSync(new URL(`./fixtures/${name}.json`, import.meta.url), "utf-8"));
}

export const HOSTILE = '<img src=x onerror="alert(1)"><script>alert(2)</script> & "quotes" </pre>';
