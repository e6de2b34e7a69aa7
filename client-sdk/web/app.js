// The patient app: consent in the patient's hands. Keys are made and used in
// this browser only; the node sees signatures, never the key.
import { Node, ApiError, createKey, createRecoveryKey, readRecoveryCode, loadKey, storeKey, forgetKey, bcs } from "./api.js";
import { qrSvg } from "./qr.js";
import { fetchOwnRecords, labRow } from "./records.js";

const T = {
  zh: {
    title: "我的病历授权",
    waitingCount: (n) => `${n} 件待处理`,
    tabsLabel: "主要页面", tabHome: "首页", tabGrants: "授权", tabRecords: "病历", tabHistory: "记录", tabPeople: "家人", tabMe: "我的",
    needsTitle: "需要您处理的事", recentTitle: "最近发生的事", allHistory: "查看全部记录", shortcutsTitle: "常用",
    newGrant: "新授权", showId: "出示我的编号", settingsTitle: "设置", largeText: "大字模式（字更大，更好认）",
    startTitle: "开始", startText: "在本设备上生成您的密钥。私钥永远不会离开本设备，节点也看不到它。",
    startTextSm: "在本设备上生成您的密钥。私钥保存在本设备的浏览器中，节点看不到它。",
    backupTextSm: "此账本使用国密算法：您的私钥保存在本浏览器中，本网站的程序可以读取它。请指定一位监护人或代理人，或设置恢复联系人：丢失设备后，他们可以批准您的新密钥。",
    otherSuite: "此设备上保存的密钥属于使用另一种密码算法的账本，不能在这个账本上使用。在浏览器设置中清除本网站的数据后可重新开始（那把密钥会被删除）。",
    ownTitle: "我的病历", ownText: "从持有您病历的医院下载您自己的病历：申请记录在账本上，病历加密后只有本设备能打开。",
    ownHolder: "从哪家医院", ownCategories: "哪些类别", ownSubmit: "下载我的病历", ownLabs: "检验结果", ownTest: "项目", ownValue: "结果", ownDate: "日期",
    ownAsking: "正在申请…", ownFetching: "正在下载并核对…", ownDone: (n) => `已下载 ${n} 份病历，每一份都与医院在账本上记录的一致。`, ownNone: "这家医院没有您这些类别的病历。",
    createKey: "生成我的密钥", qrLabel: "我的患者编号二维码", meTitle: "我的身份", meText: "在医院登记处出示此编号，医院即可将您的病历与您关联。",
    register: "在账本上登记", registered: "已登记", backupTitle: "如果丢失手机怎么办？",
    backupText: "您的私钥无法导出。请指定一位监护人或代理人，或设置恢复联系人：丢失设备后，他们可以批准您的新密钥。",
    grantsTitle: "我的授权", grantTitle: "新授权", grantee: "授权给哪家机构、医联体或哪位医生", categories: "可查看的内容",
    holders: "从哪些机构调取（可留空，表示任何持有机构）", purpose: "目的", days: "有效天数",
    consentNotice: "告知：被授权机构的医生可以在有效期内向上述持有机构调取所选类别和时间范围内的病历，未勾选的敏感信息不会发送；授权给医联体时，其成员以联盟各方投票为准，之后加入的成员也可调取；每一次调取都会记录在账本上并实时通知您；您可以随时撤回。",
    grantSubmit: "同意并授权", requestsTitle: "待我答复的请求", approve: "同意", deny: "拒绝", asks: "请求查看",
    delegateTitle: "监护人与代理人", delegateId: "对方的患者编号", role: "身份", proxy: "代理人", guardian: "监护人", recordedBy: "登记医院", evidence: "证明材料哈希",
    delegateSubmit: "指定", end: "终止", doctorAt: "的医生", consent_requested: "收到授权请求", consent_answered: "已答复请求",
    delegation_started: "指定了监护人/代理人", delegation_ended: "终止了监护人/代理人", emergency_reviewed: "紧急调取已复核", emergency_review_overdue: "紧急调取逾期未复核", own_records_requested: "我申请调取本人病历", streamEnded: "实时更新已停止：此设备已不能再查看这份记录（密钥已更换或授权已结束）。", errDelegate: "患者编号是 64 位十六进制字符。", active: "有效", ended: "已终止", historyTitle: "谁看了我的病历", revoke: "撤回", confirmRevoke: "确定撤回这项授权吗？撤回后对方将无法再调取。",
    none: "暂无", granted: "已授权", revoked: "已撤回", access: "调取请求", released: "已发送病历", releaseAfterEnd: "授权结束后记录的发送（诚实的医院不会发送内容）", emergency: "紧急调取",
    publicHealth: "公共卫生调取", authorized: "已批准", denied: "已拒绝", newAccess: "新的调取记录",
    signedByYou: "✓ 已核验：与您签署的一致", notWhatYouSigned: "⚠ 节点显示的内容与您签署的不一致，请联系医院或监管机构",
    sentCount: (n) => `${n} 份`,
    standing: { in_force: "（监管部门已核验执业许可）", not_in_force: "（执业许可已暂停或失效）" },
    standingLegend: "✓ 表示卫生健康监管部门已核验该医院的执业许可；⚠ 表示其执业许可已暂停或失效。",
    denial: {
      requester_not_active: "申请的医务人员已不能执业", institution_not_active: "申请的机构已不是有效成员",
      grant_revoked: "授权已撤回", grant_relinquished: "对方已放弃授权", grant_not_yet_valid: "授权尚未开始",
      grant_expired: "授权已过期", not_grantee: "申请人不是被授权人", category_not_granted: "所要的内容不在授权范围内",
      holder_not_granted: "授权没有包括这家医院", holder_not_eligible: "这家医院不能提供病历", purpose_mismatch: "目的与授权不符",
      emergency_not_allowed: "这家机构不能紧急调取", not_public_health: "只有疾控机构的公共卫生人员才能这样调取",
      unknown_patient: "没有这位患者", licence_not_in_force: "申请人或其所在机构的执业许可无效",
    },
    fetchRefused: "调取被拒", refusal: { grant_not_active: "调取依据已不成立（授权已撤回或过期，或医务人员已不能执业）", already_served: "同一请求重复调取", not_authorized: "并非该请求的申请人" },
    errGrantee: "请输入机构编号（小写字母、数字和“-”），或医生编号（64 位十六进制）。", errUnknownGrantee: "没有这家成员机构。",
    errCategories: "请至少选择一类。", errHolders: "每个机构编号只能含小写字母、数字和“-”，用逗号分隔。",
    errDays: "请输入 1 到 3650 之间的天数。", done: "已提交并上链", until: "至",
    status: { active: "有效", expiring: "即将到期", pending: "未开始", expired: "已过期", revoked: "已撤回", relinquished: "已放弃" },
    practitioner: "医生", notifications: "开启通知", alliance: "医联体",
    linkTitle: "在医院关联我的病历号", linkText: "医院登记处会告诉您在本院的病历号。核对无误后在此签名，并把签名码出示给登记处。没有您的签名，医院不会按您的授权发送病历。",
    linkHospital: "医院", linkNumber: "本院病历号", linkSubmit: "核对无误，签名", linkShow: "请让登记处扫描这个二维码，或照下方的签名码录入：", linkQrLabel: "病历号关联签名的二维码", recoveryQrLabel: "恢复码的二维码",
    errLinkNumber: "病历号只含字母、数字、“-”和“_”，最多 64 个字符。",
    recordsSince: "哪段时间的病历", recordsAll: "全部时间", records1: "最近一年", records3: "最近三年", records5: "最近五年",
    sensitiveLegend: "敏感信息（默认不包含；要包含请逐项勾选）", recordsFrom: "仅含此日期之后的病历：", recordsBefore: "此日期之前", noSensitive: "不含敏感信息", withSensitive: "含敏感信息：",
    sens: { hiv: "艾滋病相关", "mental-health": "精神心理", "reproductive-health": "生殖健康", genetic: "基因信息" },
    cat: { "lab-reports": "检验报告", imaging: "影像检查", prescriptions: "处方", "discharge-summaries": "出院小结",
      diagnoses: "诊断", procedures: "手术操作", allergies: "过敏史", immunizations: "预防接种", "clinical-notes": "病历文书", "full-record": "全部病历" },
    pur: { treatment: "诊疗", referral: "转诊", "continuity-of-care": "随访", consultation: "会诊", "insurance-claim": "医保结算", research: "科研" },
    recoverStartTitle: "我换了设备，要找回原来的患者编号", recoverId: "原来的患者编号", recoverStart: "在本设备上生成新密钥",
    recoveringText: "这是找回用的新密钥。请把下面的恢复码交给您的恢复联系人（当面或通过您信任的方式）；足够多的联系人批准后，本设备就会接管您原来的编号和全部授权。",
    waitingApproval: "正在等待恢复联系人批准本设备的新密钥。",
    cancelRecovery: "编号填错了：取消这次找回", confirmCancelRecovery: "取消后，本设备上这把找回用的新密钥将被删除，恢复码作废。确定吗？", recovered: "已找回：本设备现在使用您原来的编号。",
    recoveryTitle: "恢复联系人", recoveryText: "如果丢失本设备，您指定的联系人（也须是已登记的患者）可以批准您在新设备上生成的密钥。",
    contacts: "联系人的患者编号（每行一个，最多 8 个）", threshold: "需要几位联系人同意", contactsSubmit: "保存恢复联系人",
    helpTitle: "帮联系人找回", codeLabel: "对方新设备上显示的恢复码", approveSubmit: "我已确认是本人，批准新密钥",
    noPolicy: "尚未设置恢复联系人。", policy: (n, k) => `已设置 ${n} 位恢复联系人，需 ${k} 位同意。`,
    approvalsSoFar: (n) => `已有 ${n} 位联系人批准。`, approved: "已批准对方的新密钥。",
    errContacts: "请输入 1 到 8 个不同的患者编号（64 位十六进制），不能包括您自己。",
    errThreshold: "请输入 1 到联系人人数之间的整数。",
    errCode: "恢复码的长度或字符不对，请向对方重新核对。", errCodeProof: "恢复码已损坏或被改动：其中的签名不成立。",
    errCodeSelf: "这是您自己的恢复码，须由您的联系人批准。",
    keyReplaced: "本设备的密钥已不再是您的密钥（已通过恢复换成新设备的密钥）。请在新设备上管理您的授权。",
    controlChanged: "账户控制变更",
    anyHolder: "任何持有您病历的机构", grantee: "授权给", from: "从", fromHolders: "调取自",
    requestChecked: "✓ 已核验：与请求方签署的条款一致", requestMismatch: "⚠ 节点显示的条款与请求方签署的不一致，请勿同意，并联系医院或监管机构",
    control: {
      recovery_contacts_changed: "恢复联系人已更改",
      recovery_approved: "一位恢复联系人批准了新密钥",
      key_replacement_scheduled: "恢复联系人将用新密钥替换您的密钥",
      key_rotated: "您的密钥已更换",
      pending_changes_cancelled: "待生效的变更已取消",
    },
    effectiveAt: (when) => `生效时间：${when}`,
    pendingPolicy: (n, k, when) => `待生效：新的恢复联系人（${n} 位，需 ${k} 位同意），${when} 起生效。`,
    pendingKey: (when) => `待生效：恢复联系人批准的新密钥将于 ${when} 替换本设备的密钥。`,
    notYou: "如果这不是您本人的操作，请立即取消。",
    cancelKey: "取消替换密钥", cancelContacts: "取消更改恢复联系人",
  },
  en: {
    title: "My record consents",
    waitingCount: (n) => `${n} waiting for you`,
    tabsLabel: "Main screens", tabHome: "Home", tabGrants: "Grants", tabRecords: "Records", tabHistory: "History", tabPeople: "People", tabMe: "Me",
    needsTitle: "Waiting for you", recentTitle: "What just happened", allHistory: "See everything", shortcutsTitle: "Shortcuts",
    newGrant: "New grant", showId: "Show my ID", settingsTitle: "Settings", largeText: "Large text (bigger and easier to read)",
    startTitle: "Start", startText: "Make your key on this device. The private key never leaves it; no node ever sees it.",
    startTextSm: "Make your key on this device. The private key is kept in this browser; no node ever sees it.",
    backupTextSm: "This ledger uses China's SM algorithms: your private key is kept in this browser, where this site's code can read it. Appoint a guardian or proxy, or name recovery contacts: if you lose this device, they can approve your new key.",
    otherSuite: "The key kept on this device is for a ledger that uses other cryptography; it cannot be used on this ledger. Clearing this site's data in the browser settings lets you start again (that key is then deleted).",
    createKey: "Make my key", qrLabel: "QR code of my patient ID", meTitle: "My ID", meText: "Show this ID at a hospital's registration desk so it can link your records to you.",
    ownTitle: "My records", ownText: "Download your own records from a hospital that holds them: the request is recorded on the ledger, and the records are sealed so only this device can open them.",
    ownHolder: "From which hospital", ownCategories: "Which categories", ownSubmit: "Download my records", ownLabs: "Lab results", ownTest: "Test", ownValue: "Result", ownDate: "Date",
    ownAsking: "Asking…", ownFetching: "Downloading and checking…", ownDone: (n) => `Downloaded ${n} records, each one matching what the hospital recorded on the ledger.`, ownNone: "This hospital holds none of your records in these categories.",
    register: "Register on the ledger", registered: "Registered", backupTitle: "What if I lose my phone?",
    backupText: "Your private key cannot be exported. Appoint a guardian or proxy, or name recovery contacts: if you lose this device, they can approve your new key.",
    grantsTitle: "My grants", grantTitle: "New grant", grantee: "Institution, alliance or doctor to grant", categories: "What they may read",
    holders: "From which institutions (leave empty for any that holds your records)", purpose: "Purpose", days: "Days it lasts",
    consentNotice: "Notice: doctors of the institution you grant may fetch the chosen categories, of the chosen period, from the holders above until the grant ends; sensitive information you did not tick is never sent; a grant to an alliance reaches its members as the consortium's votes set them, members who join later too; every fetch is recorded on the ledger and shown to you as it happens; you can revoke at any time.",
    grantSubmit: "Agree and grant", requestsTitle: "Requests waiting for my answer", approve: "Approve", deny: "Refuse", asks: "asks to read",
    delegateTitle: "Guardians and proxies", delegateId: "Their patient ID", role: "Role", proxy: "Proxy", guardian: "Guardian", recordedBy: "recorded by", evidence: "evidence hash",
    delegateSubmit: "Appoint", end: "End", doctorAt: "a doctor at", consent_requested: "Consent requested", consent_answered: "Request answered",
    delegation_started: "Guardian or proxy appointed", delegation_ended: "Guardian or proxy ended", emergency_reviewed: "Emergency access reviewed", emergency_review_overdue: "Emergency access not reviewed in time", own_records_requested: "I asked for my own records", streamEnded: "Live updates stopped: this device may no longer follow this record (its key was replaced, or a delegation ended).", errDelegate: "A patient ID is 64 hexadecimal characters.", active: "active", ended: "ended", historyTitle: "Who read my records", revoke: "Revoke", confirmRevoke: "Revoke this grant? They will not be able to fetch anything more.",
    none: "None yet", granted: "Granted", revoked: "Revoked", access: "Access request", released: "Records sent", releaseAfterEnd: "Release recorded after the permission ended (an honest hospital sends nothing)", emergency: "Emergency access",
    publicHealth: "Public-health access", authorized: "authorised", denied: "denied", newAccess: "New access recorded",
    signedByYou: "✓ Checked: what you signed", notWhatYouSigned: "⚠ The node shows something other than what you signed; tell the hospital or the regulator",
    sentCount: (n) => `${n} record(s)`,
    standing: { in_force: " (licence checked by a health regulator)", not_in_force: " (licence suspended or lapsed)" },
    standingLegend: "✓ a health regulator has checked the hospital's licence; ⚠ its licence is suspended or lapsed.",
    denial: {
      requester_not_active: "the practitioner may no longer practise", institution_not_active: "the institution is no longer an active member",
      grant_revoked: "the grant was revoked", grant_relinquished: "they gave the grant up", grant_not_yet_valid: "the grant had not started",
      grant_expired: "the grant had expired", not_grantee: "the requester is not who was granted", category_not_granted: "what they asked for is not in the grant",
      holder_not_granted: "the grant does not name this hospital", holder_not_eligible: "this hospital cannot provide records", purpose_mismatch: "the purpose differs from the grant's",
      emergency_not_allowed: "this institution may not use emergency access", not_public_health: "only public-health officers may use public-health access",
      unknown_patient: "no such patient", licence_not_in_force: "the licence of the requester or their institution is not in force",
    },
    fetchRefused: "Fetch refused", refusal: { grant_not_active: "what it rested on no longer held (the grant revoked or expired, or the practitioner no longer allowed to practise)", already_served: "the same request used again", not_authorized: "not the doctor who made the request" },
    errGrantee: "Enter an institution id (lowercase letters, digits and '-') or a doctor's id (64 hexadecimal characters).", errUnknownGrantee: "No member institution has this id.",
    errCategories: "Choose at least one category.", errHolders: "Institution ids are lowercase letters, digits and '-', separated by commas.",
    errDays: "Enter 1 to 3650 days.", done: "Submitted and committed", until: "until",
    status: { active: "active", expiring: "expiring soon", pending: "not yet started", expired: "expired", revoked: "revoked", relinquished: "given up" },
    practitioner: "doctor", notifications: "Turn on notifications", alliance: "alliance",
    linkTitle: "Link my record number at a hospital", linkText: "The hospital's desk tells you your record number there. Check it, sign it here and show the signature to the desk. Without your signature the hospital sends none of your records under your grants.",
    linkHospital: "Hospital", linkNumber: "Your record number there", linkSubmit: "It is mine: sign", linkShow: "Let the desk scan this code, or type the signature below it:", linkQrLabel: "QR code of the record-number signature", recoveryQrLabel: "QR code of the recovery code",
    errLinkNumber: "A record number is letters, digits, '-' and '_', at most 64 characters.",
    recordsSince: "Records from which period", recordsAll: "All time", records1: "The last year", records3: "The last 3 years", records5: "The last 5 years",
    sensitiveLegend: "Sensitive information (left out unless you tick each one)", recordsFrom: "only records dated from", recordsBefore: "before", noSensitive: "no sensitive information", withSensitive: "including sensitive:",
    sens: { hiv: "HIV", "mental-health": "mental health", "reproductive-health": "reproductive health", genetic: "genetic data" },
    cat: Object.fromEntries(bcs.CATEGORIES.map((c) => [c, c.replace(/-/g, " ")])),
    pur: Object.fromEntries(bcs.PURPOSES.map((p) => [p, p.replace(/-/g, " ")])),
    recoverStartTitle: "I have a new device and want my patient ID back", recoverId: "My old patient ID", recoverStart: "Make a new key on this device",
    recoveringText: "This is a new key for recovering your ID. Give the recovery code below to your recovery contacts (in person, or another way you trust); once enough of them approve, this device takes over your old ID and all its grants.",
    waitingApproval: "Waiting for your recovery contacts to approve this device's new key.",
    cancelRecovery: "Wrong ID: cancel this recovery", confirmCancelRecovery: "This deletes the new key made on this device for the recovery; its code stops working. Cancel?", recovered: "Recovered: this device now uses your old ID.",
    recoveryTitle: "Recovery contacts", recoveryText: "If you lose this device, the people you name here (registered patients too) can approve the key you make on a new one.",
    contacts: "Their patient IDs (one per line, at most 8)", threshold: "How many of them must agree", contactsSubmit: "Save recovery contacts",
    helpTitle: "Help a contact recover", codeLabel: "The recovery code shown on their new device", approveSubmit: "I have checked it is them: approve the new key",
    noPolicy: "No recovery contacts yet.", policy: (n, k) => `${n} recovery contact(s); ${k} must agree.`,
    approvalsSoFar: (n) => `${n} contact(s) have approved so far.`, approved: "Their new key is approved.",
    errContacts: "Enter 1 to 8 different patient IDs (64 hexadecimal characters each), not your own.",
    errThreshold: "Enter a whole number from 1 to the number of contacts.",
    errCode: "This recovery code has the wrong length or characters; check it with them again.", errCodeProof: "This recovery code is damaged or altered: its signature does not hold.",
    errCodeSelf: "This is your own recovery code: your contacts approve it.",
    keyReplaced: "This device's key is no longer your key (it was replaced through recovery by a new device's). Manage your grants on the new device.",
    controlChanged: "Account control changed",
    anyHolder: "any institution holding your records", grantee: "to", from: "from", fromHolders: "held by",
    requestChecked: "✓ Checked: the terms the requester signed", requestMismatch: "⚠ The node shows other terms than the requester signed: do not approve; tell the hospital or the regulator",
    control: {
      recovery_contacts_changed: "recovery contacts changed",
      recovery_approved: "a recovery contact approved a new key",
      key_replacement_scheduled: "recovery contacts will replace your key with a new one",
      key_rotated: "your key was replaced",
      pending_changes_cancelled: "pending changes cancelled",
    },
    effectiveAt: (when) => `takes effect ${when}`,
    pendingPolicy: (n, k, when) => `Pending: new recovery contacts (${n}; ${k} must agree), in force from ${when}.`,
    pendingKey: (when) => `Pending: a new key approved by your recovery contacts replaces this device's key at ${when}.`,
    notYou: "If this was not you, cancel it now.",
    cancelKey: "Cancel the key replacement", cancelContacts: "Cancel the new contacts",
  },
};

let lang = localStorage.getItem("lang") || "zh";
const t = () => T[lang];
const $ = (id) => document.getElementById(id);
const node = new Node("");
let key = null;
let institutions = [];
// Groups of members (medical alliances) a grant may name, from the node.
let groups = [];
// Grants already checked against the transaction the patient signed (their
// terms never change): id → null (matches), "other-key", or what failed.
const grantChecks = new Map();

function say(text) {
  $("notice").textContent = text;
}

function fail(e) {
  say(e instanceof ApiError ? `${e.code}: ${e.message}` : String(e));
}

function translate() {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  // On an SM chain the key is not a non-extractable WebCrypto key: texts
  // that promise that have an SM version (docs/app.md).
  const sm = node.suite?.name === "sm2-sm3";
  for (const el of document.querySelectorAll("[data-t]")) {
    const name = el.dataset.t;
    el.textContent = (sm && t()[`${name}Sm`]) || t()[name];
  }
  for (const el of document.querySelectorAll("[data-t-label]")) el.setAttribute("aria-label", t()[el.dataset.tLabel]);
  $("lang").textContent = lang === "zh" ? "English" : "中文";
  // The QR codes' names, in the language now shown.
  for (const [box, name] of [["qr", "qrLabel"], ["recovery-qr", "recoveryQrLabel"], ["link-qr", "linkQrLabel"]]) {
    $(box).querySelector("svg")?.setAttribute("aria-label", t()[name]);
  }
  // One box per value, unticked (a translation redraws them).
  const boxes = (name, values, words) =>
    values.map((v) => {
      const label = document.createElement("label");
      label.className = "check";
      label.innerHTML = `<input type="checkbox" name="${name}" value="${v}"> <span></span>`;
      label.querySelector("span").textContent = words[v];
      return label;
    });
  $("categories").replaceChildren(...boxes("category", bcs.CATEGORIES, t().cat));
  $("own-categories").replaceChildren(...boxes("category", bcs.CATEGORIES, t().cat));
  $("sensitive").replaceChildren(...boxes("sensitive", bcs.SENSITIVE_CLASSES, t().sens));
  fillInstitutionLists();
  showWaitingCount();
  $("purpose").replaceChildren(
    ...bcs.PURPOSES.map((p) => {
      const o = document.createElement("option");
      o.value = p;
      o.textContent = t().pur[p];
      return o;
    }),
  );
  if (key) refresh();
}

/** An institution as offered in a list: its name, and whether a regulator vouches for its licence (R4.16). */
function institutionOption(i) {
  const o = document.createElement("option");
  o.value = i.id;
  // The mark first: a long name is cut at the end in a phone's select.
  o.textContent = `${{ in_force: "✓ ", not_in_force: "⚠ " }[i.licence] ?? ""}${i.name}${t().standing[i.licence] ?? ""}`;
  return o;
}

/** The member lists of the forms, in the current language (choices kept). */
function fillInstitutionLists() {
  $("institutions").replaceChildren(
    ...institutions.map(institutionOption),
    ...groups.map((g) => {
      const o = document.createElement("option");
      o.value = g.id;
      o.textContent = groupName(g.id);
      return o;
    }),
  );
  // Hospitals: where records are linked at the desk, and fetched from.
  const hospitals = institutions.filter((i) => (i.kind === "hospital" || i.kind === "internet-hospital") && i.status === "active");
  for (const id of ["link-hospital", "own-holder"]) {
    const chosen = $(id).value;
    $(id).replaceChildren(...hospitals.map(institutionOption));
    if (chosen) $(id).value = chosen;
  }
}

function institutionName(id) {
  return institutions.find((i) => i.id === id)?.name ?? id;
}

/** A group (medical alliance) in words: its members' names. */
function groupName(id) {
  const group = groups.find((g) => g.id === id);
  return group ? `${t().alliance}（${group.members.map(institutionName).join("、")}）` : `${t().alliance} ${id}`;
}

/** Who a grant is to, in words. */
function granteeName(grantee) {
  if (grantee.institution) return institutionName(grantee.institution);
  if (grantee.group) return groupName(grantee.group);
  return `${t().practitioner} ${grantee.practitioner.slice(0, 12)}…`;
}

/**
 * Reloads what the ledger holds for the patient. Returns whether the node
 * accepted this device's key (false while it waits to be registered, or,
 * on a recovering device, approved).
 */
async function refresh() {
  try {
    const grants = await node.getSigned(key, `/v1/patients/${key.patient}/grants`);
    $("registered").textContent = t().registered;
    $("register").hidden = true;
    if (key.recoveryCode) {
      // Recovered: said once; from now on this device is like any other.
      delete key.recoveryCode;
      await storeKey(key);
      $("recovering").hidden = true;
      say(t().recovered);
    }
    setAccepted(true);
    $("grants").replaceChildren(...(grants.items.length ? grants.items.map(grantItem) : [li(t().none, "none")]));
    const requests = await node.getSigned(key, `/v1/patients/${key.patient}/consent-requests`);
    checkOwnGrants(grants.items, requests.items);
    const open = requests.items.filter((r) => !r.answer);
    $("requests").replaceChildren(...(open.length ? open.map(requestItem) : [li(t().none, "none")]));
    waiting.requests = open.length;
    const delegations = await node.getSigned(key, `/v1/patients/${key.patient}/delegations`);
    $("delegations").replaceChildren(...delegations.items.filter((d) => d.patient === key.patient).map(delegationItem));
    const history = await node.getSigned(key, `/v1/patients/${key.patient}/history`);
    const newest = history.items.slice().reverse();
    $("history").replaceChildren(...(newest.length ? newest.map(historyItem) : [li(t().none, "none")]));
    // The home screen: the last few entries.
    $("recent").replaceChildren(...(newest.length ? newest.slice(0, RECENT).map(historyItem) : [li(t().none, "none")]));
    const recovery = await node.getSigned(key, `/v1/patients/${key.patient}/recovery`);
    const policy = recovery.policy ? t().policy(recovery.policy.contacts.length, recovery.policy.threshold) : t().noPolicy;
    $("recovery-policy").textContent = recovery.approvals.length ? `${policy} ${t().approvalsSoFar(recovery.approvals.length)}` : policy;
    showPendingChanges(recovery);
    showWaitingCount();
    localStorage.setItem(acceptedMark(), "1");
    return true;
  } catch (e) {
    if (e.code !== "unknown_signer") {
      fail(e);
      return false;
    }
    setAccepted(false);
    if (localStorage.getItem(acceptedMark())) {
      // This key worked before: the patient's key has been replaced since.
      $("registered").textContent = "";
      $("register").hidden = true;
      say(t().keyReplaced);
    } else if (key.recoveryCode) {
      // Not approved yet: the old ID still has its old key.
      $("register").hidden = true;
      $("recovering").hidden = false;
      say(t().waitingApproval);
    } else {
      $("registered").textContent = "";
      $("register").hidden = false;
    }
    return false;
  }
}

function localTime(ms) {
  return new Date(ms).toLocaleString(lang === "zh" ? "zh-CN" : "en");
}

/**
 * Changes of who controls the account that wait out the ledger's delay
 * (rules R4.2, R4.3): said as a warning with a button that cancels them
 * with this device's key (R4.11), and looked at again when they fall due.
 */
let pendingTimer = null;
function showPendingChanges(recovery) {
  const box = $("recovery-pending");
  const lines = [];
  const due = [];
  if (recovery.pending_policy) {
    const p = recovery.pending_policy;
    lines.push(t().pendingPolicy(p.contacts.length, p.threshold, localTime(p.effective_at)));
    due.push(p.effective_at);
  }
  if (recovery.pending_key) {
    lines.push(t().pendingKey(localTime(recovery.pending_key.effective_at)));
    due.push(recovery.pending_key.effective_at);
  }
  box.hidden = !lines.length;
  waiting.changes = lines.length;
  clearTimeout(pendingTimer);
  if (!lines.length) {
    box.replaceChildren();
    return;
  }
  // One button each: contacts who scheduled a key must not make the patient
  // throw away the new contacts that will replace them (R4.11).
  const buttons = [];
  if (recovery.pending_key) {
    buttons.push(actionButton(t().cancelKey, "secondary cancel-change", { kind: "cancelControlChange", key: true, contacts: false }));
  }
  if (recovery.pending_policy) {
    buttons.push(actionButton(t().cancelContacts, "secondary cancel-change", { kind: "cancelControlChange", key: false, contacts: true }));
  }
  box.replaceChildren(`${lines.join(" ")} ${t().notYou} `, ...buttons);
  pendingTimer = setTimeout(refresh, Math.max(0, Math.min(...due) - Date.now()) + 1500);
}

/** Remembers that the node accepted this device's key for this patient. */
function acceptedMark() {
  return `accepted:${key.patient}:${bcs.toHex(key.publicRaw)}`;
}

const PATIENT_ID = /^[0-9a-f]{64}$/;

function showError(form, field, errorId, message) {
  $(errorId).textContent = message ?? "";
  form[field].setAttribute("aria-invalid", message ? "true" : "false");
}

async function recoverStart(event) {
  event.preventDefault();
  const form = event.target;
  const patient = form.patient.value.trim().toLowerCase();
  const bad = !PATIENT_ID.test(patient);
  showError(form, "patient", "recover-id-error", bad ? t().errDelegate : "");
  if (bad) return;
  try {
    key = await createRecoveryKey(patient, node.chain);
    showKey();
    await startWhenAccepted();
  } catch (e) {
    fail(e);
  }
}

async function setContacts(event) {
  event.preventDefault();
  const form = event.target;
  const contacts = form.contacts.value.toLowerCase().split(/[\s,，]+/).filter(Boolean);
  const distinct = new Set(contacts);
  const badContacts = contacts.length < 1 || contacts.length > 8 || distinct.size !== contacts.length
    || contacts.some((c) => !PATIENT_ID.test(c) || c === key.patient);
  const threshold = Number(form.threshold.value);
  const badThreshold = !Number.isInteger(threshold) || threshold < 1 || threshold > Math.max(1, contacts.length);
  showError(form, "contacts", "contacts-error", badContacts ? t().errContacts : "");
  showError(form, "threshold", "threshold-error", badThreshold ? t().errThreshold : "");
  if (badContacts || badThreshold) return;
  try {
    await node.submit(key, { kind: "setRecoveryPolicy", delegates: contacts, threshold });
    say(t().done);
    form.reset();
    refresh();
  } catch (e) {
    fail(e);
  }
}

async function approveRecovery(event) {
  event.preventDefault();
  const form = event.target;
  const code = form.code.value.replace(/\s+/g, "").toLowerCase();
  let read = null;
  // Patient id, the new key (of the chain's suite) and its proof, in hex.
  const digits = 2 * (32 + node.suite.keyLength + 64);
  let problem = new RegExp(`^[0-9a-f]{${digits}}$`).test(code) ? "" : t().errCode;
  if (!problem) {
    try {
      read = await readRecoveryCode(code, node.chain);
      if (read.patient === key.patient) problem = t().errCodeSelf;
    } catch {
      problem = t().errCodeProof;
    }
  }
  showError(form, "code", "code-error", problem);
  if (problem) return;
  try {
    await node.submit(key, { kind: "approveRecovery", patient: read.patient, newKey: read.newKey, newKeyProof: read.proof });
    say(t().approved);
    form.reset();
  } catch (e) {
    fail(e);
  }
}

/**
 * Refreshes now and, once the node accepts this device's key, opens the
 * live stream; a recovering device checks again every few seconds.
 */
async function startWhenAccepted() {
  if (await refresh()) {
    live();
    return;
  }
  if (key.recoveryCode) setTimeout(startWhenAccepted, 3000);
}

function li(text, cls = "") {
  const item = document.createElement("li");
  if (cls) item.className = cls;
  item.textContent = text;
  return item;
}

/** One line of a card. */
function line(text, cls = "") {
  const div = document.createElement("div");
  if (cls) div.className = cls;
  div.textContent = text;
  return div;
}

function badge(text, cls) {
  const b = document.createElement("span");
  b.className = `badge ${cls}`;
  b.textContent = text;
  return b;
}

function grantItem(g) {
  const item = document.createElement("li");
  item.dataset.grant = g.id;
  const who = granteeName(g.terms.grantee);
  const purpose = t().pur[g.terms.purpose] ?? "";
  // Active but ending within a week: "expiring soon".
  const status = g.status === "active" && g.terms.expires_at_ms - Date.now() < 7 * 86400000 ? "expiring" : g.status;
  const cats = g.terms.categories.map((c) => t().cat[c]).join("、");
  const holders = Array.isArray(g.terms.holders) ? g.terms.holders.map(institutionName).join("、") : t().anyHolder;
  const until = new Date(g.terms.expires_at_ms).toLocaleDateString(lang === "zh" ? "zh-CN" : "en");
  // A card: who, then what, then from where, why and until when.
  const head = line(who, "who");
  head.prepend(badge(t().status[status] ?? status, status), " ");
  item.append(head, line(`${cats} · ${scopeText(g.terms)}`), line(`${t().fromHolders} ${holders} · ${purpose} · ${t().until} ${until}`));
  if (g.status === "active" || g.status === "pending") {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "secondary revoke";
    button.textContent = t().revoke;
    button.addEventListener("click", async () => {
      if (!confirm(t().confirmRevoke)) return;
      try {
        await node.submit(key, { kind: "revoke", grant: g.id });
        say(t().done);
        refresh();
      } catch (e) {
        fail(e);
      }
    });
    item.append(button);
  }
  return item;
}

/**
 * Checks each grant this device's key signed against its signed transaction
 * (signature, id and terms, in the browser), and marks it: a node cannot show
 * the patient terms other than those they signed without it showing.
 */
async function checkOwnGrants(items, requests) {
  for (const g of items) {
    if (g.granted_by?.patient !== key.patient) continue;
    if (!grantChecks.has(g.id)) {
      try {
        const tx = await node.getSigned(key, `/v1/transactions/${g.id}`);
        if (g.answers) {
          // Made by approving a request: its terms must be the request's as
          // its requester signed them, and the approval this key's.
          const request = requests.find((r) => r.id === g.answers);
          if (!request) continue;
          const asked = await node.getSigned(key, `/v1/transactions/${g.answers}`);
          grantChecks.set(g.id, await bcs.checkAnsweredGrant(node.chain, g, request, asked.bcs, tx.bcs, key.publicRaw));
        } else {
          grantChecks.set(g.id, await bcs.checkOwnGrant(node.chain, g, tx.bcs, key.publicRaw));
        }
      } catch (e) {
        continue; // unavailable now; tried again on the next refresh
      }
    }
    const result = grantChecks.get(g.id);
    const item = document.querySelector(`#grants li[data-grant="${g.id}"]`);
    if (!item || result === "other-key" || item.querySelector(".checked")) continue;
    const mark = badge(result === null ? t().signedByYou : t().notWhatYouSigned, result === null ? "active checked" : "denied checked");
    if (result !== null) mark.title = result;
    item.append(" ", mark);
  }
}

function actionButton(label, cls, payload) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = cls;
  button.textContent = label;
  button.addEventListener("click", async () => {
    try {
      await node.submit(key, payload);
      say(t().done);
      refresh();
    } catch (e) {
      fail(e);
    }
  });
  return button;
}

/** A grant's record scope in words: its period, and the sensitive classes it includes. */
function scopeText(terms) {
  const day = (ms) => new Date(ms).toLocaleDateString(lang === "zh" ? "zh-CN" : "en");
  const parts = [];
  if (terms.records_from_ms !== null) parts.push(`${t().recordsFrom} ${day(terms.records_from_ms)}`);
  if (terms.records_until_ms !== null) parts.push(`${t().recordsBefore} ${day(terms.records_until_ms)}`);
  parts.push(
    terms.sensitive_included.length
      ? `${t().withSensitive} ${terms.sensitive_included.map((c) => t().sens[c] ?? c).join("、")}`
      : t().noSensitive,
  );
  return parts.join(" ");
}

/** Every term of a grant or a request, in words. */
function termsText(terms) {
  const day = (ms) => new Date(ms).toLocaleDateString(lang === "zh" ? "zh-CN" : "en");
  const cats = terms.categories.map((c) => t().cat[c]).join("、");
  const purpose = t().pur[terms.purpose] ?? terms.purpose;
  const grantee = granteeName(terms.grantee);
  const holders = Array.isArray(terms.holders) ? terms.holders.map(institutionName).join("、") : t().anyHolder;
  return `${cats} · ${scopeText(terms)} · ${purpose} · ${t().grantee} ${grantee} · ${t().fromHolders} ${holders} · ${t().from} ${day(terms.not_before_ms)} ${t().until} ${day(terms.expires_at_ms)}`;
}

/**
 * A consent request with every term it would grant. Approving signs the
 * request's id, which commits to those terms: the approve button is enabled
 * only once the terms shown are checked against the requester's signed
 * transaction.
 */
function requestItem(r) {
  const item = document.createElement("li");
  item.dataset.request = r.id;
  const who = line("", "who");
  who.textContent = r.requested_by.institution ? institutionName(r.requested_by.institution) : "…";
  if (r.requested_by.practitioner) {
    // Name the practitioner's institution (public), never the practitioner.
    node
      .get(`/v1/practitioners/${r.requested_by.practitioner}`)
      .then((p) => {
        who.textContent = lang === "zh" ? `${institutionName(p.institution)}${t().doctorAt}` : `${t().doctorAt} ${institutionName(p.institution)}`;
      })
      .catch(() => {});
  }
  item.append(who, line(`${t().asks} ${termsText(r.terms)}`));
  const approve = actionButton(t().approve, "approve", { kind: "answerConsentRequest", request: r.id, approve: true });
  approve.disabled = true;
  const buttons = document.createElement("div");
  buttons.append(approve, " ", actionButton(t().deny, "secondary deny", { kind: "answerConsentRequest", request: r.id, approve: false }));
  item.append(buttons);
  node
    .getSigned(key, `/v1/transactions/${r.id}`)
    .then((tx) => bcs.checkConsentRequest(node.chain, r, tx.bcs))
    .catch((e) => `unavailable: ${e.message ?? e}`)
    .then((problem) => {
      const mark = badge(problem === null ? t().requestChecked : t().requestMismatch, problem === null ? "active checked" : "denied checked");
      if (problem !== null) mark.title = problem;
      approve.disabled = problem !== null;
      item.append(" ", mark);
    });
  return item;
}

function delegationItem(d) {
  const item = document.createElement("li");
  item.append(badge(d.active ? t().active : t().ended, d.active ? "active" : "revoked"), ` ${t()[d.role]} · ${d.delegate.slice(0, 16)}… `);
  // A guardianship a hospital recorded: which hospital, and the hash of the
  // evidence it saw (the document and its salt stay with the hospital).
  if (d.recorded_by) {
    item.append(`${t().recordedBy} ${institutionName(d.recorded_by)} · `);
    if (d.evidence_hash) item.append(`${t().evidence} ${d.evidence_hash.slice(0, 16)}… `);
  }
  if (d.active) item.append(actionButton(t().end, "secondary", { kind: "endDelegation", delegation: d.id }));
  return item;
}

async function appoint(event) {
  event.preventDefault();
  const form = event.target;
  const delegate = form.delegate.value.trim().toLowerCase();
  const days = Number(form.days.value);
  const badId = !/^[0-9a-f]{64}$/.test(delegate);
  const badDays = !Number.isInteger(days) || days < 1 || days > 3650;
  $("delegate-error").textContent = badId ? t().errDelegate : "";
  $("delegate-days-error").textContent = badDays ? t().errDays : "";
  form.delegate.setAttribute("aria-invalid", String(badId));
  if (badId || badDays) return;
  try {
    await node.submit(key, { kind: "delegate", delegate, role: form.role.value, expiresAt: Date.now() + days * 86400000 });
    say(t().done);
    form.reset();
    refresh();
  } catch (e) {
    fail(e);
  }
}

function historyItem(entry) {
  const item = document.createElement("li");
  item.dataset.event = entry.event.type;
  const when = new Date(entry.time_ms).toLocaleString(lang === "zh" ? "zh-CN" : "en");
  const e = entry.event;
  switch (e.type) {
    case "access_decided": {
      const kind = e.kind === "emergency" ? t().emergency : e.kind === "public-health" ? t().publicHealth : t().access;
      // A denial in the patient's words; its English sentence when the code is new to this app.
      const why = t().denial[e.denial_code] ?? e.decision.denied ?? "";
      const decision = e.decision === "authorized" ? t().authorized : `${t().denied}: ${why}`;
      item.append(badge(kind, e.kind === "emergency" ? "emergency" : e.decision === "authorized" ? "active" : "denied"),
        ` ${when} · ${institutionName(e.holder)} · ${decision}`);
      break;
    }
    case "released":
      // A release recorded after its basis ended: the holder's gateway
      // sends nothing for it, and the patient is told so.
      if (e.grant_active === false) {
        item.classList.add("warning");
        item.append(badge(t().releaseAfterEnd, "denied"), ` ${when} · ${institutionName(e.holder)}`);
      } else {
        item.append(badge(t().released, "active"), ` ${when} · ${institutionName(e.holder)} · ${t().sentCount(e.content_count)}`);
      }
      break;
    case "own_records_requested":
      item.append(badge(t().own_records_requested, "active"), ` ${when} · ${institutionName(e.holder)}`);
      break;
    case "fetch_refused":
      item.append(badge(t().fetchRefused, "denied"), ` ${when} · ${institutionName(e.holder)} · ${t().refusal[e.reason] ?? e.reason}`);
      break;
    case "granted":
      item.append(badge(t().granted, "active"), ` ${when}`);
      break;
    case "revoked":
      item.append(badge(t().revoked, "revoked"), ` ${when}`);
      break;
    case "control_changed":
      // A change of who controls the account is always a warning.
      item.classList.add("warning");
      item.append(badge(t().controlChanged, "emergency"),
        ` ${when} · ${t().control[e.change] ?? e.change} · ${t().effectiveAt(localTime(e.effective_at))}`);
      break;
    case "emergency_review_overdue":
      // Break-glass that nobody reviewed by its deadline: a warning.
      item.classList.add("warning");
      item.append(badge(t().emergency_review_overdue, "emergency"), ` ${when} · ${institutionName(e.requester_institution)}`);
      break;
    default:
      item.append(badge(t()[e.type] ?? e.type, ""), ` ${when}`);
  }
  return item;
}

function validate(form) {
  const errors = {};
  const grantee = form.grantee.value.trim();
  const toDoctor = /^[0-9a-f]{64}$/.test(grantee);
  const toGroup = groups.some((g) => g.id === grantee);
  if (!toDoctor && !bcs.isInstitutionId(grantee)) errors.grantee = t().errGrantee;
  else if (!toDoctor && !toGroup && institutions.length && !institutions.some((i) => i.id === grantee)) {
    errors.grantee = t().errUnknownGrantee;
  }
  const categories = [...form.querySelectorAll("input[name=category]:checked")].map((c) => c.value);
  if (categories.length === 0) errors.categories = t().errCategories;
  const holders = form.holders.value.split(/[,，\s]+/).filter(Boolean);
  if (holders.some((h) => !bcs.isInstitutionId(h))) errors.holders = t().errHolders;
  const days = Number(form.days.value);
  if (!Number.isInteger(days) || days < 1 || days > 3650) errors.days = t().errDays;
  for (const field of ["grantee", "categories", "holders", "days"]) {
    $(`${field}-error`).textContent = errors[field] ?? "";
    const input = form[field];
    if (input?.setAttribute) input.setAttribute("aria-invalid", errors[field] ? "true" : "false");
  }
  const sensitive = [...form.querySelectorAll("input[name=sensitive]:checked")].map((c) => c.value);
  const years = Number(form.recordsSince.value || 0);
  return Object.keys(errors).length ? null : { grantee, toDoctor, toGroup, categories, holders, days, sensitive, years };
}

/** Signs the record number the desk showed, for the chosen hospital, and shows the signature to hand over. */
async function signLink(event) {
  event.preventDefault();
  const form = event.target;
  const number = form.number.value.trim();
  const ok = /^[A-Za-z0-9_-]{1,64}$/.test(number);
  $("link-number-error").textContent = ok ? "" : t().errLinkNumber;
  form.number.setAttribute("aria-invalid", ok ? "false" : "true");
  if (!ok) return;
  try {
    const signature = await node.signRecordLink(key, form.hospital.value, number);
    // To scan: uppercase hex is QR's alphanumeric mode, which fits the 128
    // digits in version 6. To read out or type: groups of eight.
    $("link-qr").innerHTML = qrSvg(signature.toUpperCase(), t().linkQrLabel);
    $("link-signature").textContent = signature.match(/.{8}/g).join(" ");
    $("link-result").hidden = false;
  } catch (e) {
    fail(e);
  }
}

/** The download links of the records on show (revoked before new ones, and when the page goes). */
let ownUrls = [];
function revokeOwnUrls() {
  for (const url of ownUrls) URL.revokeObjectURL(url);
  ownUrls = [];
}

/** Downloads the patient's own records (rule R7.8): observations as a table, every record a file to save. */
async function fetchOwn(event) {
  event.preventDefault();
  const form = event.target;
  const categories = [...form.querySelectorAll("input[name=category]:checked")].map((c) => c.value);
  $("own-categories-error").textContent = categories.length ? "" : t().errCategories;
  if (!categories.length) return;
  const status = $("own-status");
  const button = form.querySelector("button[type=submit]");
  // One download at a time (the module opens one transfer at a time).
  button.disabled = true;
  status.textContent = t().ownAsking;
  $("own-labs").hidden = true;
  $("own-files").replaceChildren();
  revokeOwnUrls();
  try {
    const fetched = await fetchOwnRecords(node, key, { holder: form.holder.value, categories }, (step) => {
      if (step === "asked") status.textContent = t().ownFetching;
    });
    const rows = [];
    const files = [];
    for (const item of fetched.items) {
      const row = labRow(item);
      if (row) {
        const tr = document.createElement("tr");
        for (const cell of [row.name, row.value, row.date]) {
          const td = document.createElement("td");
          td.textContent = cell;
          tr.append(td);
        }
        rows.push(tr);
      }
      // Every record can be saved as the file it is.
      const link = document.createElement("a");
      const type = item.path.endsWith(".json") ? "application/fhir+json" : "application/octet-stream";
      link.href = URL.createObjectURL(new Blob([item.bytes], { type }));
      ownUrls.push(link.href);
      link.download = item.path.replace("/", "-");
      link.textContent = `${t().cat[item.category] ?? item.category} · ${item.path.split("/")[1]} (${item.size} B)`;
      const li = document.createElement("li");
      li.append(link);
      files.push(li);
    }
    $("own-labs").querySelector("tbody").replaceChildren(...rows);
    $("own-labs").hidden = rows.length === 0;
    $("own-files").replaceChildren(...files);
    status.textContent = fetched.items.length ? t().ownDone(fetched.items.length) : t().ownNone;
    refresh();
  } catch (e) {
    status.textContent = "";
    fail(e);
  } finally {
    button.disabled = false;
  }
}

async function grant(event) {
  event.preventDefault();
  const values = validate(event.target);
  if (!values) return;
  const now = Date.now();
  try {
    await node.submit(key, {
      kind: "grant",
      terms: {
        patient: key.patient,
        grantee: values.toDoctor
          ? { practitioner: values.grantee }
          : values.toGroup
            ? { group: values.grantee }
            : { institution: values.grantee },
        categories: values.categories,
        // "The last N years": records dated from N×365 days before now.
        recordsFrom: values.years ? now - values.years * 365 * 86400000 : null,
        recordsUntil: null,
        sensitiveIncluded: values.sensitive,
        holders: values.holders,
        purpose: event.target.purpose.value,
        notBefore: now,
        expiresAt: now + values.days * 86400000,
        noticeHash: await bcs.hash($("consent-notice").textContent),
      },
    });
    say(t().done);
    event.target.reset();
    refresh();
  } catch (e) {
    fail(e);
  }
}

/** The screens, each named by the address's fragment (`#grants`), so the phone's back button goes back a screen. */
const SCREENS = ["home", "grants", "records", "history", "people", "me"];
/** How many history entries the home screen shows. */
const RECENT = 5;
/** Whether the ledger accepts this device's key for the patient: until it does, only the ID screen is shown. */
let accepted = false;
/** Whether this device has a key of this chain's suite on show (no screen before then). */
let keyShown = false;
let shownScreen = null;
/** What waits for the patient's answer: open consent requests, and pending changes of control. */
const waiting = { requests: 0, changes: 0 };

function route() {
  const asked = location.hash.slice(1);
  const screen = !keyShown ? null : !accepted ? "me" : SCREENS.includes(asked) ? asked : "home";
  for (const name of SCREENS) $(`screen-${name}`).hidden = name !== screen;
  for (const tab of document.querySelectorAll("#tabs a, #me-link")) {
    if (tab.dataset.screen === screen) tab.setAttribute("aria-current", "page");
    else tab.removeAttribute("aria-current");
  }
  if (shownScreen !== null && screen !== null && shownScreen !== screen) {
    // A new screen starts at its top, and a screen reader reads its title.
    window.scrollTo(0, 0);
    $(`screen-${screen}`).querySelector("h2")?.focus();
  }
  shownScreen = screen;
}

function setAccepted(value) {
  accepted = value;
  $("tabs").hidden = !value;
  $("me-link").hidden = !value;
  route();
}

/** The number on the home tab: what waits for the patient's answer (said in words to a screen reader). */
function showWaitingCount() {
  const n = waiting.requests + waiting.changes;
  $("home-count").hidden = n === 0;
  $("home-count").textContent = n ? String(n) : "";
  const tab = document.querySelector('#tabs a[data-screen="home"]');
  if (n) tab.setAttribute("aria-label", `${t().tabHome}, ${t().waitingCount(n)}`);
  else tab.removeAttribute("aria-label");
}

function showKey() {
  $("start").hidden = true;
  // Until the ledger accepts the key (registered, or a recovery approved)
  // the ID screen is all there is.
  keyShown = true;
  route();
  $("patient-id").textContent = key.patient;
  $("qr").innerHTML = qrSvg(key.patient, t().qrLabel);
  if (key.recoveryCode) {
    // To scan: uppercase hex is QR's alphanumeric mode (version 9 holds the
    // code on either suite); the contact's app reads either case.
    $("recovery-qr").innerHTML = qrSvg(key.recoveryCode.toUpperCase(), t().recoveryQrLabel);
    $("recovery-code").textContent = key.recoveryCode;
  }
}

async function live(delay = 2000) {
  // A dropped stream is reopened with a fresh signature (each is single
  // use), waiting longer after each failure; one the node ended because
  // this key may no longer follow the record is not reopened.
  const again = () => setTimeout(() => live(Math.min(delay * 2, 60000)), delay);
  try {
    await node.events(key, { entry: onLiveEntry, ended: () => say(t().streamEnded), error: again });
  } catch (e) {
    if (e.status === 401 || e.status === 403) say(t().streamEnded);
    else again();
  }
}

function onLiveEntry(entry) {
  const names = { access_decided: t().access, released: t().released, granted: t().granted, revoked: t().revoked, fetch_refused: t().fetchRefused, control_changed: t().controlChanged, emergency_review_overdue: t().emergency_review_overdue, own_records_requested: t().own_records_requested };
  const text = `${t().newAccess}: ${names[entry.event.type] ?? entry.event.type}`;
  say(text);
  if ("Notification" in window && Notification.permission === "granted") new Notification("medledger", { body: text });
  refresh();
}

async function main() {
  window.addEventListener("hashchange", route);
  // Large text: offered at the start and in settings, one setting.
  const toggles = [...document.querySelectorAll(".large-text-toggle")];
  const setLarge = (on) => {
    document.documentElement.classList.toggle("large", on);
    for (const box of toggles) box.checked = on;
  };
  setLarge(localStorage.getItem("largeText") === "1");
  for (const box of toggles) {
    box.addEventListener("change", (event) => {
      localStorage.setItem("largeText", event.target.checked ? "1" : "0");
      setLarge(event.target.checked);
    });
  }
  $("lang").addEventListener("click", () => {
    lang = lang === "zh" ? "en" : "zh";
    localStorage.setItem("lang", lang);
    translate();
  });
  await node.status();
  institutions = (await node.get("/v1/institutions")).items;
  groups = (await node.get("/v1/groups")).items.filter((g) => g.members.length > 0);
  translate();
  key = await loadKey();
  $("create").addEventListener("click", async () => {
    key = await createKey();
    showKey();
    // The node says whether it knows the key (a new one: not yet), which
    // brings up the register button.
    await refresh();
  });
  $("register").addEventListener("click", async () => {
    try {
      await node.submit(key, { kind: "registerPatient" });
      say(t().done);
      await refresh();
      live();
    } catch (e) {
      fail(e);
    }
  });
  $("grant-form").addEventListener("submit", grant);
  $("link-form").addEventListener("submit", signLink);
  $("own-form").addEventListener("submit", fetchOwn);
  window.addEventListener("pagehide", revokeOwnUrls);
  if ("Notification" in window && Notification.permission === "default") {
    const ask = $("notify");
    ask.hidden = false;
    ask.addEventListener("click", () => Notification.requestPermission().then(() => (ask.hidden = true)));
  }
  $("delegate-form").addEventListener("submit", appoint);
  $("recover-form").addEventListener("submit", recoverStart);
  $("contacts-form").addEventListener("submit", setContacts);
  $("approve-form").addEventListener("submit", approveRecovery);
  $("cancel-recovery").addEventListener("click", async () => {
    if (!confirm(t().confirmCancelRecovery)) return;
    // The key never became the patient's; nothing on the ledger changes.
    await forgetKey();
    location.reload();
  });
  if (key && key.suite !== node.suite.name) {
    // One origin, one chain: a key for another suite's chain stays where it
    // is (it may still be someone's only key) and signs nothing here.
    say(t().otherSuite);
  } else if (key) {
    showKey();
    await startWhenAccepted();
  } else {
    $("start").hidden = false;
  }
}

main().catch(fail);
