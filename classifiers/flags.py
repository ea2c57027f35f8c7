"""Risk flags by rules: legal, safety, security, outage, press, abuse.

Rules, not a model: a flag must be explainable to the agent who sees it, and each one names
the phrase that raised it. Patterns match whole words in lower-cased text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

# Shared fragments. An apostrophe may be typed straight, curly or not at all.
_AP = r"['’]?"
_YOU_ARE = rf"(you{_AP}re|you are|u r|ur|you (guys|people|lot|all) are|y{_AP}all are)"
_LAWYER = r"(lawyers?|attorneys?|solicitors?)"
_FOOD = (
    r"(food|meal|burger|drink|salad|sandwich|soup|bowl|burrito|taco|pizza|coffee|tea|chips"
    r"|fries|cereal|bread|chicken|pie|cake|doughnuts?|donuts?|yogh?urt|milk|juice|water|wrap"
    r"|nuggets?|dinner|lunch|breakfast|order|bag|box|pack|packet|tin|can|bottle)"
)
_FOREIGN = (
    r"(hairs?|bugs?|insects?|flies|maggots?|worms?|cockroach(es)?|roach(es)?|slugs?|snails?"
    r"|mouse|rats?|droppings|glass|plastic|metal|wire|screws?|nails?|plasters?|band.?aids?"
    r"|stones?|mou?ld)"
)

# Security: who gets into an account, what they do there, and the codes and messages involved.
_SOMEONE = (
    r"(someone|somebody|some one|some1|a stranger|strangers|a hacker|hackers|scammers?"
    r"|fraudsters?|a third party|another person|whoever|some (random )?(asshole|idiot|guy|person"
    r"|dude|random))( else)?"
)
_AUX = (
    r"( (has|have|had|must have|might have|may have|could have|can|could|is|was|keeps|kept"
    r"|keep|just|somehow|still|been|is still|was able to|managed to|is trying to|keeps trying to"
    r"|tried to))*"
)
_INTRUDES = (
    r"((logged|logging|log|signed|signing|sign) (in|into|in to|on|onto)"
    r"|(got|gotten|getting|get|broke|broken|breaking|hacked|hacking|hack) (into|in to|onto|on to)"
    r"|(accessed|accessing|access|hacked|hacking|hijacked|hijacking|stole|stealing|stolen|used"
    r"|using|changed|changing|reset|resetting|drained|draining|emptied|compromised|cloned)"
    r" (my|our)"
    r"|(changed|changing|reset) the (email|password|phone number|login|details|number|address)"
    r"|(took|taken|taking) over (my|our)"
    r"|got to my"
    r"|(gained|gaining|gain|has|have|had|got|gotten) (unauthori[sz]ed )?access"
    r"|(has|had|got|knows|knew) my (password|login|card|card details|details|pin|account details"
    r"|bank details|credentials)"
    r"|(tried|trying|tries|attempting|attempted|attempts) to (log|sign|get|break|hack|access|use"
    r"|change|reset|buy|order)"
    r"|(bought|buying|ordered|ordering|purchased|purchasing|paid|paying|spent|spending|charged"
    r"|charging|made purchases|booked|booking)( \w+){0,4} (with|on|using|from|through) my)"
)
_CODES = (
    r"(codes?|otps?|pins?|passcodes?|2fa|verification|password reset|reset|log.?in|sign.?in)"
    r"( (emails?|texts?|sms|messages?|links?|requests?|alerts?|notifications?|codes?|attempts?))?"
)
_NEVER = rf"(didn{_AP}t|did not|never|haven{_AP}t|have not|hadn{_AP}t)"
_ASKED = (
    r"(request|requested|ask|asked|make|made|initiate|initiated|trigger|triggered|try|tried"
    r"|attempt|attempted)"
)
_CHANNEL = (
    r"(email|e-?mail|text|text message|sms|message|dm|call|phone call|voicemail|letter|website"
    r"|site|webpage|web page|page|account|profile|app|link|login page|invoice|receipt|voucher"
    r"|giveaway|survey|number)"
)
_SENDER = rf"({_CHANNEL}|caller|person|someone|somebody|people|guy|scammers?|fraudsters?)"

PATTERNS: Mapping[str, tuple[str, ...]] = {
    "legal": (
        rf"(my|our|the) {_LAWYER}",
        rf"{_LAWYER} (will|would|is|are|has|have|about|involved)",
        rf"(contact|call|consult|speak|talk|hire|get|instruct|involv|see)\w* (to |with )?"
        rf"(a|an|my|our) {_LAWYER}",
        r"lawyer(ed|ing)? up",
        r"attorneys? general",
        r"legal (action|team|department|advice|counsel|proceedings|route|case)",
        r"(i|we)(['’]ll| will| shall| am going to| are going to| (am|are) gonna) sue",
        r"(sue|sued|suing) (you|u|the company|for|over)",
        r"(going to|gonna|want to|to|will|threaten\w*|consider\w*) sue",
        r"lawsuits?",
        r"small claims",
        r"class action",
        r"ombudsman",
        r"trading standards",
        r"regulat(or|ors|ory)",
        r"(ftc|fcc|cfpb|cpuc|ofcom|ofgem|ofwat|bbb|ico)",
        r"better business bureau",
        r"citizens advice",
        r"civil aviation authority",
        r"(department|dept) of transportation",
        r"advertising standards",
        r"consumer (protection|rights|affairs)",
        r"(take|taking|took|taken) (you|u|them|this|it|\w+) to court",
        r"(see you|see u|you in|you to) court",
        r"(county|district|civil|small claims) court",
        r"court (case|action|order|date|summons)",
        r"(report|reporting|reported) (you|u) to",
        r"(file|filed|filing|lodge|lodged|lodging|make|made|making) (a |an )?(formal |official )?"
        r"complaint (with|to) (the )?(\w+ )?(commission|authority|regulator|bureau|board)",
        r"breach of (contract|the law|data protection|gdpr|my (consumer )?rights)",
        r"(gdpr|data protection act)",
        rf"(is|are|was|were|it{_AP}s|that{_AP}s|this is|totally|completely|clearly|blatantly"
        r"|literally|actually|simply|plain) illegal",
        r"illegally",
        r"against the law",
        r"unlawful(ly)?",
    ),
    "safety": (
        r"injur(y|ies|ed|e|ing)",
        r"hurt (me|myself|my)",
        r"(got|was|were|been|is|are|get|getting) (badly |seriously |really )?(hurt|injured)",
        r"burn(s|t|ed)? (on|to) (my|his|her|their|the|our)",
        r"burn(t|ed)? (me|my|his|her|their|myself|himself|herself|themselves|ourselves)",
        r"(got|get|suffered|has|have|had|left) (a |bad |severe |nasty )?burns?",
        r"(charger|cable|plug|battery|socket|wire|lead|adapter|heater|device)s? (has |had |have )?"
        r"(melted|overheated and|sparked|burst into flames|scorched)",
        r"(on|caught|started a|set on) fire",
        r"fire hazard",
        r"smoke (coming|pouring)",
        r"sparking",
        r"(exposed|live|bare) wires?",
        r"explod(e|ed|es|ing)",
        r"electric(al)? shock",
        r"electrocut\w+",
        r"carbon monoxide",
        r"gas leak",
        r"smell(s|ed)? (of|like) gas",
        # Food: illness, foreign objects, allergens.
        r"food poisoning",
        r"(salmonella|e\.? ?coli|listeria|norovirus)",
        r"(sick|ill|poorly) after (eating|drinking)",
        r"(made|making|make) (me|us|him|her|them|my \w+) (so |really |very )?(sick|ill|poorly)",
        r"(vomit(ing|ed)?|threw up|throwing up|diarrh(o)?ea|stomach (ache|pains?|cramps?))",
        r"undercooked",
        r"raw (chicken|meat|pork|burger|in the middle)",
        r"(rotten|mou?ldy|off) (food|meat|chicken|eggs?|fruit|bread|milk)",
        r"dead (fly|flies|bugs?|insects?|mouse|mice|rats?|cockroach(es)?|roach(es)?|slugs?"
        r"|snails?|spiders?|worms?|maggots?)",
        r"mou?ldy",
        r"mou?ld (on|in|growing)",
        r"foreign (object|body|bodies)",
        r"glass in",
        rf"{_FOREIGN} (in|inside) (my|our|this|a|an|one|1|his|her|their)",
        r"(piece|bit|shard|chunk|lump|fragment)s? of (plastic|glass|metal|wire|bone|wood|stone)",
        rf"found (a|an|some|two|three|\w+) (\w+ )?in (my|our|the|this|his|her) {_FOOD}",
        rf"(what is|what{_AP}s|whats) (this|that) in (my|our|the|this) {_FOOD}",
        r"allerg(y|ies|ic|en|ens)",
        r"anaphyla\w+",
        r"epi.?pen",
        r"(product|safety|food) recalls?",
        r"(been|being|was|were) recalled",
        # Harm to people: medical help, near misses, accidents.
        r"hospital(i[sz]ed)?",
        r"a&e",
        r"(emergency room|urgent care)",
        r"(in|to) the er",
        r"ambulance",
        r"paramedics?",
        r"(call(ed|ing)?|dial(l?ed|l?ing)?) (911|999)",
        r"chok(ing|ed) on",
        r"choking",
        rf"(nearly|almost|could have|could{_AP}ve|would have|might have) (died|killed|been killed)",
        r"(nearly|almost) (choked|drowned|crashed|hit)",
        r"(bleeding|bled|stitches|concussion|broken (bone|arm|leg|wrist|ankle|nose|rib)s?)",
        r"seizures?",
        r"(photosensitiv|epilep)\w*",
        r"unsafe",
        r"not safe",
        r"dangerous(ly)?",
        r"(our|my|his|her|their|passenger|passengers|customer|customers|public|child|children)"
        rf"{_AP}s? safety",
        r"safety (concern|issue|hazard|risk|problem)s?",
        r"(in|put (me|us|my \w+) in) danger",
        r"hazard(ous)?",
        r"crash(ed|es)? into",
        r"(car|road|traffic|bus|train|bike) (accident|crash|collision)",
        r"(got|been|was|were|get|getting) in(to)? (a|an) (car |minor |major |serious |bad )?"
        r"(accident|crash|collision)",
        r"(drunk|reckless(ly)?|dangerous(ly)?) (driver|driving|drove)",
        r"driv(er|ing) (was )?(drunk|high|intoxicated|under the influence)",
        r"fell off",
        r"(tripped|slipped) (over|on|and)",
        r"brakes? (failed|failure|gave out)",
        # Violence and threats.
        r"assault(ed|ing|s)?(?! on (your|my|the|our) (eyes|ears|senses|wallets?|taste\w*))",
        r"(assault and|act of) battery",
        r"sexual(ly)? (assault\w*|harass\w*|inappropriate|abus\w*)",
        r"harass(ed|ing|ment)",
        r"grop(e|ed|ing)",
        r"(touch(ed|ing)?|grabbed) (me|my (ass|butt|bum|leg|legs|thigh|breasts?|chest|body"
        r"|crotch))",
        r"(attacked|punched|kicked|slapped|shoved|spat on|spit on|headbutted) (me|us|my|him|her)",
        r"(a|his|her|their|a loaded) (gun|knife|firearm|weapon|pistol)",
        r"threat(en|ened|ening|ens) (me|us|my|to (kill|hurt|hit|attack|beat))",
        r"(stalk(ed|ing|er)|kidnap\w*|abduct\w*)",
        r"(call(ed|ing)?|contact(ed|ing)?|report(ed|ing)?( \w+)? to|give|gave) the (police|cops)",
    ),
    "security": (
        # Account takeover: hacked, hijacked, someone else in the account.
        r"hack(ed|er|ers|ing)",
        r"(got|get|getting|been|was|were|is|be|being) hack",
        r"hijack(ed|ing)?",
        rf"{_SOMEONE}{_AUX} {_INTRUDES}",
        r"(took|take|taken|taking|takes) over (my|our|his|her|their) (\w+ )?account",
        r"(my|our) (\w+ )?account (got|gotten|was|has been|had been|been|is) (took|taken|stolen"
        r"|hijacked)(?! (off|out|down|away|to|into|from|for))",
        rf"{_SOMEONE}( (is|was|keeps|kept))?( still| always| now)?( a)? (accessing|using|playing on"
        r"|logged (in|into|on)|logging (in|into|on)) (it|everything|my|our)",
        r"(random|unknown|strange|unrecogni[sz]ed|another) (device|person|user)s?( \w+){0,2} "
        r"(taking over|took over|logged in|logging in|playing on|using my)",
        r"account (\w+ ){0,2}(taken|took) over",
        r"account take.?over",
        r"(hacked|broke|broken|breaking|hacking) into (my|our|his|her|their|your|the)",
        r"(email|e-?mail address|password|phone number|login details|recovery email)s? "
        r"(was|were|has been|have been|had been|got) changed",
        r"(changed|reset) (my|the) (email|e-?mail address|password|phone number|login)( \w+)?"
        r" without",
        r"password (reset|changed) (without|that i)",
        r"(account|accounts|card|cards|details|password|passwords|data|email|emails|security"
        r"|information|info|systems?|site|website|servers?|login|device|phone|computer|identity"
        r"|credentials|bank)( \w+)? (was |were |has been |have been |had been |got |is |are |been "
        r"|being |may have been |might have been |may be |might be )?compromised",
        r"compromised (account|card|details|password|data|email|login|credentials)s?",
        # Sign-ins, codes and resets the customer did not ask for.
        r"(false|fake|bogus|mystery|unknown|unrecogni[sz]ed|suspicious|unexplained|unusual|strange"
        r"|unfamiliar) (charge|transaction|payment|purchase|debit|withdrawal|login|log in|sign.?in"
        r"|device|activity|session|location|ip address)s?",
        rf"(device|devices|location|locations|logins?|log.?ins?|sign.?ins?|ip address|phone"
        rf"|computer|browser|session|address|number)( \w+)? (that |which )?(i|we) (don{_AP}t"
        rf"|do not|didn{_AP}t|did not|can{_AP}t|cannot) recogni[sz]e",
        rf"(log.?ins?|sign.?ins?|access|devices?|sessions?|activity|attempts?|charges?|transactions?"
        rf"|payments?|purchases?|orders?|withdrawals?|debits?)( \w+){{0,4}},? (that |which |and )?"
        rf"(wasn{_AP}t|was not|weren{_AP}t|were not|isn{_AP}t|aren{_AP}t|it wasn{_AP}t|it was not)"
        r" (me|mine|us|ours)",
        rf"{_CODES}( (?!but|and|so|yet|though)\w+)? (that |which )?(i|we) {_NEVER} {_ASKED}",
        rf"{_CODES}( \w+){{0,4}},? (but|and|though|although|even though|yet) (i|we) {_NEVER} "
        r"(request|requested|ask|asked|initiate|initiated|trigger|triggered)",
        rf"{_NEVER} (request|requested|ask for|asked for)( a| the| this| these| any| new| another)*"
        r" (password|reset|codes?|verification|otp|pin|2fa|log.?in link|sign.?in link)",
        r"new (log.?in|sign.?in) from",
        r"(random|unexpected|unsolicited|unrequested|strange|weird|repeated|constant|mysterious"
        r"|dozens of) (verification|security|login|log.?in|sign.?in|2fa|two.?factor|one.?time|otp"
        r"|confirmation|authentication|password reset|reset|access) (codes?|texts?|pins?|sms"
        r"|emails?|requests?|links?|notifications?|alerts?|attempts?)",
        # Phishing and impersonation of the brand.
        r"phish(ing|ed|er|ers|y)",
        r"(smishing|vishing)",
        r"(email|e-?mail|text|text message|sms|message|dm|call|voicemail|link)s?( \w+){0,6},? "
        r"(looks|seems|sounds|looked|seemed) (really |very |a bit |kinda |pretty )?"
        r"(dodgy|suspicious|fishy|fake|sketchy|like (a )?(scam|phishing))",
        r"spoof(ed|ing)",
        r"impersonat(e|es|ed|ing|ion|ions|or|ors)",
        r"(claiming|claims|claimed|pretending|pretends|pretended|purporting|purports) to be from",
        r"posing as (you|u|your|@\w+)",
        rf"{_SENDER}s?( \w+){{0,3}} (claim|claims|claiming|claimed|pretend|pretends|pretending"
        r"|pretended|purporting|posing|poses|posed) (to be|as)",
        rf"(fake|bogus|fraudulent|phishing|scam|dodgy|suspicious|spoofed|impostor|imposter|copycat)"
        rf" {_CHANNEL}s?",
        rf"is (this|that|it|the) (an? )?(\w+ ){{0,2}}{_CHANNEL}s? (\w+ )?(legit|legitimate|genuine"
        r"|official|(really |actually )?(from|by) (you|u|your))",
        rf"{_SENDER}s?( \w+){{0,6}} (asking|asked|asks) (me )?(for|to (confirm|verify|update|enter"
        r"|give|send|provide|share)) (my |me my )?(\w+ )?(password|pin|card|bank|login|security"
        r"|account|payment|personal|cvv|otp|verification)",
        r"is (this|that|it) (a )?scam",
        # Breaches and leaks.
        r"data (breach|breaches|leak|leaks|leakage|theft)",
        r"(security|privacy) (breach|breaches|incident|flaw|flaws|hole|holes|vulnerabilit(y|ies)"
        r"|lapse|issue|issues|concern|concerns|risk|risks|problem|threat|alert|violation|nightmare"
        r"|failure)",
        r"vulnerabilit(y|ies)",
        r"(lost|leaked|exposed|sold|stolen|stole) (my|our|customer|customers|users?|people"
        rf"{_AP}s?) personal (data|information|info|details)",
        r"(account|accounts|data|systems?|database|site|website|servers?|details|information|info"
        r"|security)( \w+)? (was|were|has been|have been|had been|got|been) breached",
        r"(data|details|information|info|emails?|e-?mail address(es)?|passwords?|cards?"
        r"|card details|numbers?|addresses|records|database|accounts?|credentials|logins?)"
        r"( \w+){0,2} "
        r"(leaked|exposed|breached)",
        r"(leaked|leaking|leak|exposed|exposing|expose) (my|our|customer|customers|user|users"
        rf"|personal|people{_AP}s|everyone{_AP}s) (\w+ )?(data|details|information|info|emails?"
        r"|passwords?|card|addresses|numbers|records)",
        r"(in|from|after|by|since) (the|your|a|this|that) (recent |latest |massive |huge |big )?"
        r"(data (leak|breach)|breach(?! of)|hack)",
        # Cards, charges and identity.
        r"fraud(ulent|ulently|ster|sters)?",
        r"scam(med|mer|mers|ming)",
        r"unauthori[sz]ed",
        r"stolen (card|cards|identity|account|details|number|credit card|debit card|password)",
        r"(stole|steal|stealing) my (card|identity|account|details|number|info|information|"
        r"password|money|credit card|debit card)",
        r"(card|cards|account|details|identity|number|password|login)s? (was |were |has been |"
        r"have been |had been |got )?(stolen|cloned|compromised|skimmed)",
        r"(my|our|his|her) (\w+ )?(card|cards|card details|card number|account|paypal|bank account"
        r"|apple id|identity|details)( \w+)? (was |were |has been |have been |had been |got "
        r"|is being |are being |being |is |are )?(used|charged|accessed|debited)( \w+){0,4} "
        r"(without (my|our|his|her) (permission|consent|knowledge|authori[sz]ation)|by (someone"
        r"|somebody|a stranger|strangers|scammers|fraudsters)|fraudulently|in (another|a different)"
        r" (country|state|city))",
        r"theft",
        r"cyber.?crimes?",
        r"account security",
        rf"(charg\w*|billed|billing|deduct\w*|money)( \w+){{0,8}} (i|we) (don{_AP}t|do not) have "
        r"(an? |any )?(\w+ )?(account|subscription)",
        rf"(i|we) (don{_AP}t|do not) have (an? |any )?(\w+ )?account(,? \w+){{0,6}} (charg\w*|money"
        r"|billed|bank)",
        r"(card|bank|payment) (info|information|details)( \w+){0,3} without (my|our) (consent"
        r"|permission|authori[sz]ation|knowledge)",
        r"identity (theft|fraud)",
        r"sim (swap|swapped|hijack\w*)",
        r"(number|phone number|sim) (was |has been |got )?(ported|transferred|swapped) (out )?"
        r"without",
        r"(cloned|skimm(ed|er|ing))",
        r"(charges?|transactions?|payments?|purchases?|orders?|withdrawals?) (that )?"
        rf"(i|we) (didn{_AP}t|did not|never|have not|haven{_AP}t|don{_AP}t) "
        r"(make|made|authori[sz]e|authori[sz]ed|order|ordered|place|placed|recogni[sz]e)",
        rf"(don{_AP}t|do not|didn{_AP}t|did not) recogni[sz]e (this|these|the|a|an|that) "
        r"(charge|transaction|payment|purchase|order|debit|login|device)s?",
        r"charged (me|my card|my account)( \w+)? without (my )?(permission|consent|"
        r"authori[sz]ation|knowledge)",
        r"(drain(ed|ing)?|emptied|wiped out) my (bank |savings |checking |current )?account",
        r"(opened|taken out|requested|ordered) in my name",
        r"(replacement|new) sim (card )?in my name",
        # "I never ordered this" alone is usually a wrong item, and "never signed up" a renewal.
        r"i never (requested|authori[sz]ed) (that|this|it|them)",
        rf"(charged|billed|debited) for (\w+ ){{0,4}}(i|we) {_NEVER} (order|ordered|buy|bought"
        r"|purchase|purchased|authori[sz]e|authori[sz]ed|make|made)",
    ),
    "outage": (
        r"(is|are) (it|you|\w+) down",
        r"(service|network|site|app|website|server|system|portal|chat|checkout|login|platform"
        r"|api|store|ordering)s? (is |are |was |were |being |been |has been |have been |still "
        r"|always |constantly |currently |completely |totally |all )*down(?! (to|the|by|\d))",
        r"@\w+ (is|are|was|has been|still|seems|appears) (to be )?down",
        r"(always|constantly) down",
        r"down (again|for everyone|for everybody|everywhere|in (my|the|our|this) \w+|across)",
        r"(is|are|went|gone|been|still|all|everything) offline",
        r"outages?",
        r"(power|network|service|signal) (cut|failure|fault)s?",
        r"blackout",
        r"(lost|without|no) power",
        r"power (is |went |has gone )?(out|off)",
        r"(service|power|internet|connection|everything|everyone|everybody)( \w+)? (is |are |was "
        r"|been |has been |have been )?restored",
        r"(etr|estimated time (of|to|for) (restoration|repair|fix|resolution))",
        r"(no|zero|lost( all)?|without) (bars|signal|reception|cell service|mobile service"
        r"|phone service)",
        r"(phone|it|mine|lines?) (just |both |all )?(says|say|shows|showing|stuck on|on) (sos|no"
        r" service)",
        r"no (signal|service|internet|connection|network|power|wifi|broadband)( \w+){0,3} "
        r"(anywhere|in (my|the|our) (area|town|city|neighbo(u)?rhood|street|region))",
        r"(down|outage|out|not working|issues|problems)( \w+)? (in|across|throughout|for) (my|our|"
        r"the|this|whole|entire|all of)( \w+)? (area|region|neighbo(u)?rhood|town|city|postcode|"
        r"zip|street|country|uk|us|usa|state|county|coast)",
        r"not loading",
        r"(nation|country|region|world|state)(wide|-wide| wide)",
        r"wide.?spread",
        r"across the (country|uk|us|usa|region|world)",
        r"everyone.{0,20}(same|too)",
        r"every(one|body) (around|in (my|the|our|this))",
        r"(whole|entire) (street|area|neighbo(u)?rhood|town|city|building|block|road|village|"
        r"estate|region|country|state)",
        r"(for|affecting|affects|hitting|as have|like|and) (many|lots of|loads of|tons of|a lot of"
        r"|hundreds of|thousands of|numerous|multiple|plenty of|so many) (other )?(people|users"
        r"|customers|players|others|subscribers|gamers)",
        r"(many|lots of|loads of|tons of|a lot of|hundreds of|thousands of|numerous|multiple"
        r"|so many) (other )?(people|users|customers|players|others|subscribers|gamers) (are |have "
        r"|also |too )*(having|with|reporting|complaining|experiencing|affected|seeing|getting"
        r"|the same|can.?t|cannot|unable)",
        r"(friends|family|neighbo(u)?rs|others|people)( \w+){0,3} (also |all |too )?(can.?t"
        r"|cannot|unable to) (connect|log ?in|get online|get on|access)",
        r"neighbo(u)?rs? (are |have |has |also |too |all )*(no (internet|power|service|signal)"
        r"|lost|down|without|having the same|the same)",
        r"(other|more|similar) (reports|complaints)",
        r"reports of (this|the same|an? outage|issues|problems)",
        rf"(not|n{_AP}t) the only (one|person|people|customer|user)",
        r"(down ?detector|is ?it ?down|isitdownrightnow|outage map)",
        r"(running|common|known|widespread) (theme|issue|problem|fault|outage)",
        r"standstill",
        r"(all|no) (trains|flights|services|buses)",
        r"(trains?|services?|flights?) (are |were |have been )?(cancelled|canceled|suspended|"
        r"not running)",
        r"(signal(ling)?|points|line|power) (failure|fault|problems?)",
        r"(stuck|stranded) on (a|the) (train|plane|tarmac|runway|platform)",
        r"disruption",
        r"502|503|504",
    ),
    "press": (
        r"journalists?",
        r"reporters?",
        r"newsrooms?",
        r"the press",
        r"press (enquiry|inquiry|office|team)",
        r"(the|local|national|news) media",
        r"media (outlets?|coverage|attention|contacts?)",
        r"(news|newspaper) (station|channel|outlets?|crew|desk|team)",
        r"(tv|television|radio) (station|crew|reporter|news|journalist|producer)s?",
        r"(news|newspaper) (story|stories|article|report|piece) (about|on) (you|your|this|my)",
        r"(local|national|evening) news",
        r"newspapers?",
        r"tabloids?",
        r"(tell|telling|told|contact|contacting|contacted|call|calling|email|emailing|emailed|"
        r"write to|writing to|go to|going to|went to|gone to|tip off|tipping off|alert|alerting) "
        r"(the )?(local )?(media|press|news|papers|bbc|cnn|nbc|cbs|abc|itv|fox|sky)",
        r"(bbc|cnn|nbc|cbs|abc|itv|fox|sky|channel 4) (news|watchdog|breakfast|investigates)",
        r"reuters|watchdog|rip.?off britain|consumer reports|moneysavingexpert",
        r"(go|going|gone|went|goes) viral",
        r"(writing|working on|doing|researching) (a|an) (story|article|piece|feature|"
        r"investigation)",
        r"for (a|an|my|our) (story|article|piece|feature|investigation)",
        r"(a|an|my|our) (article|story|piece) (about|on) (you|your|this)",
        r"(request|requests|asking|ask) for (a )?comment",
        r"(comment|statement) (on|for) the record",
    ),
    "abuse": (
        rf"(f+u+c+k+|fck|fuk|f\*+k|screw) (you|u|off|ya|yourselves|y{_AP}all)",
        r"go (fuck|f\*+k) (yourself|yourselves|off)",
        r"stfu",
        r"(motherfuck|fuckwit|fuckhead|fucker)\w*",
        r"idiots?",
        r"morons?",
        r"scum(bags?)?",
        r"imbeciles?",
        r"bastards?",
        r"pricks?",
        r"cunts?",
        r"twats?",
        r"wankers?",
        r"tossers?",
        r"(ass|arse|a)-?holes?",
        r"(dick|knob|shit|bell)-?(heads?|ends?)",
        r"(jack|dumb|smart)-?ass(es)?",
        r"dipshits?",
        r"douche(bags?|s)?",
        r"muppets",
        r"numpties",
        r"retard(s|ed)?",
        r"clowns",
        r"incompetent (idiots|fools|morons)",
        r"bunch of (\w+ )?(thieves|crooks|liars|clowns|idiots|morons|muppets|amateurs|jokers|"
        r"cowboys|losers)",
        rf"{_YOU_ARE}( \w+)?( \w+)? (pathetic|evil|vile|scum|trash|garbage|stupid|dumb|brainless|"
        r"a disgrace|disgusting|pigs|animals|liars|thieves|crooks|losers|clowns)",
        r"(is|are) (so |pure |just |truly |literally |fucking )?evil",
        r"fat (faces?|pigs?|slobs?|cows?|bastards?|asses?|fucks?)",
        r"kill (you|yourselves|yourself)",
        r"kys",
        r"die in a",
        r"(go|burn|rot) (to|in) hell",
        r"(you|u) (all |guys |people )?suck",
        r"yousuck",
        r"(suck my|eat shit|piss off|bite me)",
    ),
}

# Patterns are lower case and matched against the lower-cased text: twice as fast as IGNORECASE.
# Their groups are only for reading; compiled as non-capturing they match the same spans several
# times faster, since the engine no longer saves two hundred group marks as it backtracks.
FLAGS = tuple(PATTERNS)
_GROUP = re.compile(r"(?<!\\)\((?!\?)")
_COMPILED = {
    flag: re.compile(_GROUP.sub("(?:", r"(?<!\w)(?:" + "|".join(patterns) + r")(?!\w)"))
    for flag, patterns in PATTERNS.items()
}


def risk_flags(text: str) -> dict[str, str]:
    """Each flag raised by ``text``, with the phrase that raised it."""
    lowered = text.lower()
    same_length = len(lowered) == len(text)  # a few characters change length when lowered
    found: dict[str, str] = {}
    for flag, pattern in _COMPILED.items():
        match = pattern.search(lowered)
        if match:
            found[flag] = text[match.start() : match.end()] if same_length else match.group(0)
    return found
