/**
 * Escaping for the report's HTML: everything a trace can say (file names, tokens, header facts,
 * configuration names) reaches the page through these functions only.
 */

const HTML: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

/** Text for an element's content or a quoted attribute value. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => HTML[c]!);
}

/**
 * JSON to sit inside a <script> element. `<` and `>` would let a string close the element
 * (`</script>`) or open a comment state (`<!--`); `&` is escaped as well so that the text means
 * the same to a reader who takes it for HTML; U+2028 and U+2029 end lines in older JavaScript
 * parsers. Each becomes a \u escape, which JSON.parse reads back as the same character.
 */
export function jsonForScript(value: unknown): string {
  return JSON.stringify(value).replace(
    /[<>&\u2028\u2029]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

/**
 * Script text of our own or of a bundled library, made safe to inline: `</script` and `<!--` cannot
 * stand in a script element's text. Both only ever occur inside strings, regular expressions or
 * comments, where `<\/` and `<\!` mean the same.
 */
export function inlineScript(code: string): string {
  return code.replace(/<\/(script)/gi, '<\\/$1').replace(/<!--/g, '<\\!--');
}

/** Stylesheet text made safe to inline in a <style> element. */
export function inlineStyle(css: string): string {
  return css.replace(/<\/(style)/gi, '<\\/$1');
}
