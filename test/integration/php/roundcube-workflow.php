<?php
/*
 * Drives PEAR Net_Sieve (Debian php-net-sieve) the way Roundcube's managesieve
 * plugin (rcube_sieve / rcube_sieve_engine) does, against a server given in the
 * environment, and prints one JSON object: each step's result plus the wire
 * transcript from Net_Sieve's debug hook (what Roundcube logs with
 * managesieve_debug, RC15). The test (client-net-sieve.test.ts) judges it; this
 * script decides nothing.
 *
 * Environment: SIEVE_HOST, SIEVE_PORT, SIEVE_USER, SIEVE_PASS, SIEVE_CA (PEM),
 * SIEVE_AUTH (PLAIN, LOGIN or empty = Net_Sieve's own choice), SIEVE_USETLS (1/0),
 * SIEVE_SCRIPT_FILE, SIEVE_BROKEN_FILE, SIEVE_NAME (may be non-ASCII: RC11).
 */
require_once 'Net/Sieve.php';

$env = function (string $k, string $default = ''): string {
    $v = getenv($k);
    return $v === false ? $default : $v;
};

$transcript = [];
$steps = [];
$record = function (string $step, $result) use (&$steps) {
    if (is_a($result, 'PEAR_Error')) {
        $steps[] = ['step' => $step, 'ok' => false, 'error' => $result->getMessage()];
        return false;
    }
    $steps[] = ['step' => $step, 'ok' => true, 'value' => $result];
    return true;
};
$finish = function () use (&$steps, &$transcript) {
    echo json_encode(['steps' => $steps, 'transcript' => $transcript], JSON_UNESCAPED_UNICODE | JSON_INVALID_UTF8_SUBSTITUTE), "\n";
    exit(0);
};

$sieve = new Net_Sieve();
$sieve->setDebug(true, function ($obj, $message) use (&$transcript) {
    $transcript[] = $message;
});

// rcube_sieve::__construct: connect (STARTTLS when managesieve_host is tls://),
// with managesieve_conn_options passed to the stream context.
$options = ['ssl' => ['cafile' => $env('SIEVE_CA'), 'verify_peer' => true, 'verify_peer_name' => true, 'peer_name' => 'localhost']];
$useTls = $env('SIEVE_USETLS', '1') === '1';
if (!$record('connect', $sieve->connect($env('SIEVE_HOST'), (int) $env('SIEVE_PORT'), $options, $useTls))) $finish();

$auth = $env('SIEVE_AUTH');
if (!$record('login', $sieve->login($env('SIEVE_USER'), $env('SIEVE_PASS'), $auth === '' ? null : $auth, ''))) $finish();

// rcube_sieve::get_extensions: lower-cased list (RC13).
$exts = $sieve->getExtensions();
$record('getExtensions', is_array($exts) ? array_map('strtolower', $exts) : $exts);

// rcube_sieve_engine::start: list the sets; with none, create "roundcube" holding
// "/* empty script */" and activate it (RC13).
$list = $sieve->listScripts();
$record('listScripts.initial', $list);
if (is_array($list) && count($list) === 0) {
    $record('installScript.roundcube', $sieve->installScript('roundcube', '/* empty script */'));
    $record('setActive.roundcube', $sieve->setActive('roundcube'));
}
$record('getActive.initial', $sieve->getActive());

// Saving a filter set: rcube_sieve::save -> installScript (PUTSCRIPT {n+}).
$name = $env('SIEVE_NAME');
$script = file_get_contents($env('SIEVE_SCRIPT_FILE'));
$record('installScript', $sieve->installScript($name, $script));
$record('setActive', $sieve->setActive($name));
$record('listScripts', $sieve->listScripts());
$record('getActive', $sieve->getActive());
$got = $sieve->getScript($name);
$steps[] = is_a($got, 'PEAR_Error')
    ? ['step' => 'getScript', 'ok' => false, 'error' => $got->getMessage()]
    : ['step' => 'getScript', 'ok' => true, 'base64' => base64_encode($got)];

// A broken set is refused; Roundcube shows the server's message (RC10).
$record('installScript.broken', $sieve->installScript('broken', file_get_contents($env('SIEVE_BROKEN_FILE'))));

// Renaming a set the plugin's way: copy (get + install), move activation, delete.
$renamed = $name . ' (2)';
$record('rename.install', $sieve->installScript($renamed, is_string($got) ? $got : ''));
$record('rename.setActive', $sieve->setActive($renamed));
$record('rename.remove', $sieve->removeScript($name));
$record('listScripts.renamed', $sieve->listScripts());

// rcube_sieve::remove: deactivate the active set before deleting it.
$record('deactivate', $sieve->setActive(''));
$record('removeScript', $sieve->removeScript($renamed));
$record('removeScript.roundcube', $sieve->removeScript('roundcube'));
$record('listScripts.final', $sieve->listScripts());
$record('disconnect', $sieve->disconnect());
$finish();
