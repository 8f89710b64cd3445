// The builder bundles .md files as their text (webpack asset/source).
declare module '*.md' {
  const text: string;
  export default text;
}
