-- benchmarks/rules.yaml for imapfilter 2.8, rule by rule and in the same order.
--
-- Each rule searches the INBOX afresh, so a message moved by an earlier rule is not
-- seen by later ones (mailrules' "first terminal rule wins").  Where imapfilter has no
-- exact equivalent the nearest idiomatic form is used; benchmarks/reference.py models
-- what that form does and benchmarks/README.md lists the differences.
--
-- The server comes from the environment: BENCH_HOST, BENCH_PORT, BENCH_USER, BENCH_PASSWORD.

options.starttls = false  -- the benchmark's Dovecot is plaintext, on loopback only
options.timeout = 600     -- a SEARCH or EXPUNGE over 100,000 messages outlasts the 60 s default
options.info = false

local account = IMAP {
    server = os.getenv('BENCH_HOST') or '127.0.0.1',
    port = tonumber(os.getenv('BENCH_PORT')),
    username = os.getenv('BENCH_USER'),
    password = os.getenv('BENCH_PASSWORD'),
}
local inbox = account.INBOX

local function move(results, folder)
    results:move_messages(account[folder])
end

-- spam: header X-Spam-Flag is YES (imapfilter can only search for a substring)
inbox:contain_field('X-Spam-Flag', 'YES'):delete_messages()

-- vip
inbox:contain_from('boss@example.com'):mark_flagged()

-- github-old (is_older is whole days: SEARCH BEFORE the day 365 days ago)
move(inbox:contain_field('List-Id', 'github.com') * inbox:is_older(365), 'Trash')

-- github
move(inbox:contain_field('List-Id', 'github.com'), 'Notifications/GitHub')

-- python-dev, lkml, debian
move(inbox:contain_field('List-Id', 'python-dev.python.org'), 'Lists/python-dev')
move(inbox:contain_field('List-Id', 'linux-kernel.vger.kernel.org'), 'Lists/lkml')
move(inbox:contain_field('List-Id', 'lists.debian.org'), 'Lists/debian')

-- ci-broken: from AND (subject failed OR subject broken)
move(inbox:contain_from('builds@ci.example.com') *
     (inbox:contain_subject('failed') + inbox:contain_subject('broken')), 'Alerts')

-- ci-other
inbox:contain_from('builds@ci.example.com'):delete_messages()

-- invoices: the regex runs client-side, so a server search narrows the messages first
-- (as imapfilter_config(5) recommends); match_subject sees the raw, possibly encoded, field.
local invoice_candidates = inbox:contain_subject('Rechnung') + inbox:contain_subject('Invoice')
move(invoice_candidates:match_subject('^(Rechnung|Invoice) (Nr\\.|No\\.) ?\\d+'), 'Finance/Invoices')

-- receipts: imapfilter has no address-domain test; a substring of From is the closest
move(inbox:contain_from('paypal.com'), 'Finance/Receipts')

-- newsletters-old, newsletters
move(inbox:contain_field('Precedence', 'bulk') * inbox:is_older(180), 'Trash')
move(inbox:contain_field('Precedence', 'bulk'), 'Newsletters')

-- social
move(inbox:contain_from('facebookmail.com') + inbox:contain_from('linkedin.com'), 'Social')

-- team: recipient is To, Cc or Bcc
move(inbox:contain_to('team@example.com') + inbox:contain_cc('team@example.com') +
     inbox:contain_bcc('team@example.com'), 'Work')

-- jira
move(inbox:contain_from('jira@work.example'), 'Work')

-- shopping, travel
move(inbox:contain_subject('your order'), 'Shopping')
move(inbox:contain_subject('boarding pass') + inbox:contain_subject('booking confirmation'), 'Travel')

-- other-lists
move(inbox:contain_field('Precedence', 'list'), 'Lists/Other')

-- old-read: seen, older than 540 days, not flagged
move(inbox:is_seen() * inbox:is_older(540) - inbox:is_flagged(), 'Archive')
