// Drift: where an operator starts. Operators see no figures or devices. Accounts and machine
// tokens are managed on the Tilgang page (or the server's command line, or the API); MQTT
// credentials on the command line or through the API; the messages the gateways had refused are
// under Avviste meldinger.

import { h, replace } from '../dom.js';
import { t } from '../i18n.js';

const COMMANDS = [
  ['vft user create {user} --role … [--municipality …] --password-stdin', 'drift.cmd.userCreate'],
  ['vft user list', 'drift.cmd.userList'],
  ['vft user password|role|disable|enable|unlock {user}', 'drift.cmd.userChange'],
  ['vft token create --role … --label …', 'drift.cmd.tokenCreate'],
  ['vft token list | vft token revoke ID', 'drift.cmd.tokenList'],
  ['vft mqtt-credential create --vendor … [--gateway …]', 'drift.cmd.mqttCreate'],
  ['vft mqtt-credential list | revoke {user}', 'drift.cmd.mqttList'],
];

const ROUTES = ['/api/v1/users', '/api/v1/tokens', '/api/v1/mqtt-credentials', '/api/v1/dead-letters'];

export function render(root, ctx) {
  replace(root,
    h('div', { class: 'page-head' }, h('h1', null, t('drift.title')), h('p', { class: 'lead', 'data-testid': 'operator-note' }, t('drift.intro'))),
    h('section', { class: 'card', 'aria-labelledby': 'drift-access-h' },
      h('h2', { id: 'drift-access-h' }, t('drift.access')),
      h('p', null, t('drift.accessIntro')),
      h('p', null, h('a', { class: 'btn btn-primary', id: 'drift-access-link', href: ctx.hashFor('tilgang', {}) }, t('drift.accessLink')))),
    h('section', { class: 'card', 'aria-labelledby': 'drift-cli-h' },
      h('h2', { id: 'drift-cli-h' }, t('drift.cli')),
      h('p', { class: 'hint' }, t('drift.cliIntro')),
      h('dl', { class: 'commands' }, COMMANDS.map(([cmd, key]) => [h('dt', null, h('code', null, cmd.replaceAll('{user}', t('drift.userArg')))), h('dd', null, t(key))]))),
    h('section', { class: 'card', 'aria-labelledby': 'drift-api-h' },
      h('h2', { id: 'drift-api-h' }, t('drift.api')),
      h('p', null, t('drift.apiIntro')),
      h('ul', null, ROUTES.map((r) => h('li', null, h('code', null, r))))),
    h('p', { class: 'note' }, h('a', { href: ctx.hashFor('avviste-meldinger', {}) }, t('drift.deadLetters'))));
}
