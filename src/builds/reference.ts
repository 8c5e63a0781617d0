/**
 * Docker image reference rules (distribution/reference grammar), each checked on its own so
 * that a rejected name says which rule it broke.
 */
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const DOMAIN_COMPONENT = /^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])$/;
const TAG = /^[\w][\w.-]{0,127}$/;
export const NAME_MAX_LENGTH = 255;

/** The whole grammar as one pattern, published in the JSON schema. */
export const NAME_PATTERN =
  '^(?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*(?::[0-9]+)?/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$';
export const TAG_PATTERN = '^[\\w][\\w.-]{0,127}$';

/** Returns why `name` is not a valid repository name, or null when it is. */
export function nameRuleViolation(name: string): string | null {
  if (name.length === 0) return 'name must not be empty';
  if (name.length > NAME_MAX_LENGTH) return `name must be at most ${NAME_MAX_LENGTH} characters`;
  const parts = name.split('/');
  const first = parts[0] ?? '';
  // As in docker: the first component is a registry host when it has a dot, a port or is localhost.
  if (parts.length > 1 && (first.includes('.') || first.includes(':') || first === 'localhost')) {
    const [host = '', port, ...rest] = first.split(':');
    if (rest.length > 0 || (port !== undefined && !/^[0-9]+$/.test(port))) {
      return `registry '${first}' must be host[:port] with a numeric port`;
    }
    if (!host.split('.').every((c) => DOMAIN_COMPONENT.test(c))) {
      return `registry host '${host}' must be dot-separated letters, digits and inner hyphens`;
    }
    parts.shift();
  }
  for (const component of parts) {
    if (component === '') return 'name must not have empty path components (leading, trailing or double "/")';
    if (component !== component.toLowerCase()) return `name must be lowercase ('${component}')`;
    if (!PATH_COMPONENT.test(component)) {
      return `name component '${component}' must be lowercase letters and digits, separated by '.', '_', '__' or dashes, starting and ending with a letter or digit`;
    }
  }
  return null;
}

export function tagRuleViolation(tag: string): string | null {
  if (TAG.test(tag)) return null;
  if (tag.length > 128) return 'tag must be at most 128 characters';
  return `tag '${tag}' must be letters, digits, '_', '.' and '-', not starting with '.' or '-'`;
}
