//! The site's stylesheet and script, inlined into every page (no network, no
//! framework). The script only adds hover tips, the trace ↔ timeline links and
//! the index's filters; every page reads without it.

pub const CSS: &str = r#"
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 24px 48px;color:#1f2933;background:#fff}
h1{font-size:20px;margin:16px 0 4px}h2{font-size:16px;margin:24px 0 8px;border-bottom:1px solid #e4e7eb}
nav{margin-top:12px;font-size:13px}a{color:#1c64c8}
.verdict,.flavor,.cell{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600}
.flavor{background:#e4e7eb}.pass,.match{background:#d3f4df;color:#11622f}.fail,.differs{background:#fde2e1;color:#9b1c1c}
.na{background:#eef0f3;color:#52606d}.known{background:#fff1d6;color:#8a5300}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;margin:8px 0}dt{color:#52606d}dd{margin:0}
.failure{border:1px solid #f5a3a3;background:#fff5f5;padding:8px 12px;border-radius:6px;margin:12px 0}
.failure code{background:none}
code,pre,.trace{font:12px/1.5 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.tl-wrap{overflow-x:auto;border:1px solid #e4e7eb;border-radius:6px}
.legend{display:flex;flex-wrap:wrap;gap:4px 14px;font-size:12px;margin:4px 0 8px}.legend i{display:inline-block;width:12px;height:12px;border-radius:2px;vertical-align:-2px;margin-right:4px}
svg text{font:11px system-ui,sans-serif;fill:#1f2933}
svg .label{font-weight:600;font-size:12px}svg .sub{fill:#52606d;font-size:10.5px}
svg .lane-bg{fill:transparent;stroke:#eef0f3}svg .tick{stroke:#f0f2f5}svg .axis text{fill:#52606d;font-size:10.5px}
svg .span{stroke:#fff;stroke-width:.5}svg .span-label{font-size:10.5px;fill:#111;pointer-events:none}
svg .call{fill:#52606d}svg .call-fail{fill:#c81e1e}
svg .req{stroke:#1f2933;stroke-width:.5}svg .req-label,svg .note-label,svg .env-label{font-size:10px;fill:#323f4b;pointer-events:none}
.rq-ok{fill:#27ae60}.rq-3xx{fill:#2d9cdb}.rq-4xx{fill:#eb5757}.rq-5xx{fill:#f2994a}.rq-none,.rq-fault{fill:#111}
svg .note circle{stroke:#fff;stroke-width:1}svg .note text{font-size:9px;font-weight:700;fill:#fff;text-anchor:middle;pointer-events:none}
.nt-ok circle,.cmd.nt-ok{fill:#219653}.nt-fail circle,.cmd.nt-fail{fill:#c81e1e}.nt-other circle,.cmd.nt-other{fill:#d98c00}.nt-blocked circle,.cmd.nt-blocked{fill:#6b7280}
svg .blocked{opacity:.35}.blocked.nt-ok{fill:#219653}.blocked.nt-fail{fill:#c81e1e}.blocked.nt-other{fill:#d98c00}.blocked.nt-blocked{fill:#6b7280}
svg .env{fill:#7c3aed}svg .if{fill:#7c3aed;opacity:.55}svg .limit{stroke:#c81e1e;stroke-dasharray:4 3}svg .limit-label{fill:#c81e1e;font-size:10px}
svg .brk{fill:#f3f4f6}svg .brk-zz{stroke:#9aa5b1;fill:none}svg .brk-label{font-size:10.5px;font-weight:700;fill:#52606d;text-anchor:middle}
svg #cursor{stroke:#1c64c8;stroke-width:2}
ol.trace{padding-left:56px;margin:0}ol.trace li{white-space:pre;cursor:pointer}ol.trace li:hover{background:#f0f4ff}
ol.trace li.hl{background:#dbe8ff}.t-err{color:#b42318}.t-notify{color:#5b21b6}.t-http{color:#1c64c8}.t-check{color:#52606d}.t-failed{color:#fff;background:#c81e1e}
pre.src{border:1px solid #e4e7eb;border-radius:6px;padding:8px 0;overflow-x:auto}
pre.src span{display:block;padding:0 12px}pre.src .n{display:inline-block;width:4em;color:#9aa5b1;user-select:none}
pre.src .step{background:#f7f9fb}pre.src .failed{background:#fde2e1}pre.src .why{color:#9b1c1c;font-weight:600}
table{border-collapse:collapse;font-size:13px}td,th{padding:3px 10px;border-bottom:1px solid #eef0f3;text-align:left}th{background:#f7f9fb}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.filters{margin:8px 0;display:flex;gap:16px}
.side{display:grid;grid-template-columns:1fr 1fr;gap:12px}.side pre{margin:0;border:1px solid #e4e7eb;border-radius:6px;padding:6px 0;overflow-x:auto}
.side pre span{display:block;padding:0 8px}.side .only{background:#fde2e1}.side .only.b{background:#fff1d6}
#tip{position:absolute;display:none;max-width:520px;background:#1f2933;color:#fff;font-size:12px;padding:4px 8px;border-radius:4px;pointer-events:none;white-space:pre-wrap;z-index:9}
"#;

pub const JS: &str = r#"
(function(){
var tip=document.getElementById('tip');
document.addEventListener('mouseover',function(e){
  var el=e.target.closest?e.target.closest('[data-tip]'):null;
  if(!el||!tip){if(tip)tip.style.display='none';return;}
  tip.textContent=el.getAttribute('data-tip');tip.style.display='block';
});
document.addEventListener('mousemove',function(e){if(tip){tip.style.left=(e.pageX+14)+'px';tip.style.top=(e.pageY+14)+'px';}});
function mark(t){
  document.querySelectorAll('li.hl').forEach(function(x){x.classList.remove('hl');});
  var first=null;
  document.querySelectorAll('ol.trace li[data-t="'+t+'"]').forEach(function(x){x.classList.add('hl');if(!first)first=x;});
  return first;
}
function cursor(x){var c=document.getElementById('cursor');if(c&&x){c.setAttribute('x1',x);c.setAttribute('x2',x);c.style.display='';}}
document.addEventListener('click',function(e){
  if(!e.target.closest)return;
  var li=e.target.closest('ol.trace li[data-t]');
  if(li){cursor(li.getAttribute('data-x'));mark(li.getAttribute('data-t'));
    var tl=document.getElementById('timeline');if(tl)tl.scrollIntoView({block:'nearest'});return;}
  var m=e.target.closest('#timeline [data-t]');
  if(m){cursor(m.getAttribute('data-x'));var f=mark(m.getAttribute('data-t'));if(f)f.scrollIntoView({block:'center'});}
});
var rows=document.querySelectorAll('tr[data-folder]');
function filter(){
  var f=document.getElementById('f-folder'),v=document.getElementById('f-verdict'),shown=0;
  rows.forEach(function(r){
    var ok=(!f||!f.value||r.getAttribute('data-folder')===f.value)&&(!v||!v.value||r.getAttribute('data-verdict')===v.value);
    r.style.display=ok?'':'none';if(ok)shown++;
  });
  var c=document.getElementById('shown');if(c)c.textContent=shown;
}
['f-folder','f-verdict'].forEach(function(id){var s=document.getElementById(id);if(s)s.addEventListener('change',filter);});
document.body.setAttribute('data-js','ready');
})();
"#;
