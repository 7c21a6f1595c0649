//! Language detection (script + lexicon) for utterances that arrive without
//! a language.
//!
//! [`detect`] runs on every classify request, so it does one pass over the
//! characters, no allocation and no regex: scripts are told apart by code
//! point ranges, and words are looked up in static hash tables built on
//! first use: about 0.4 µs of CPU per utterance in a release build
//! (`tests/lang_detect.rs`, `latency_per_utterance`).
//!
//! The decision, in order:
//! 1. No letters at all (empty, digits, punctuation, emoji) → [`Language::Other`]:
//!    "12345" is not English, and calling it `en` would skew the
//!    per-language statistics the console shows.
//! 2. Mostly letters of another script (Tamil, Bengali, Arabic, CJK, …) →
//!    [`Language::Other`].
//! 3. At least as many Devanagari letters as Latin ones → Devanagari text:
//!    [`Language::Mr`] when Marathi function words outweigh Hindi ones (ळ
//!    counts towards Marathi too), otherwise [`Language::Hi`] (the common case,
//!    and the one a tie should fall to).
//! 4. Latin text with some Devanagari → [`Language::Hinglish`]: script mixing is
//!    itself code-mixing.
//! 5. Latin text → [`Language::Hinglish`] when romanised Hindi words carry
//!    enough weight against English function words, otherwise
//!    [`Language::En`]. Other Latin-script languages (Spanish, …) come out as
//!    `en`: the router only tells English from Hinglish in Latin script.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

/// The languages the router distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    En,
    Hinglish,
    Hi,
    Mr,
    Other,
}

impl Language {
    pub fn as_str(self) -> &'static str {
        match self {
            Language::En => "en",
            Language::Hinglish => "hinglish",
            Language::Hi => "hi",
            Language::Mr => "mr",
            Language::Other => "other",
        }
    }

    /// Parse a stored or user-given language code.
    pub fn parse(code: &str) -> Option<Self> {
        match code.trim().to_ascii_lowercase().as_str() {
            "en" => Some(Language::En),
            "hinglish" => Some(Language::Hinglish),
            "hi" => Some(Language::Hi),
            "mr" => Some(Language::Mr),
            "other" => Some(Language::Other),
            _ => None,
        }
    }
}

impl std::fmt::Display for Language {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Romanised Hindi words that are not English words, so one of them is
/// strong evidence. Spelling variants are listed because users type them all.
const HINGLISH_STRONG: &str = "
    hai hain hoon kya kyu kyun kyon kyo mujhe muje mujhko mujko mera mere meri
    tera tere teri tum tumhe tumko tumhara tumhari aap aapka aapki aapke aapko ap apka
    apki apke apko apna apne apni hame hamein humein humko hamko hamara humara hamari
    humari uska uske uski unka unke unki iska iske iski inka inke usko isko unko inko
    ko ke ka ki se liye lie liya aur bhi nahi nahin nhi nai karo kar kardo krdo kro krna
    kardena kardijiye karna karne karke kare karen karein kariye kijiye kijie dijiye
    dena dedo dijie dikhao dikhaye dikhaiye dikha batao bataye bataiye batana bataen
    bolo boliye chahiye chahie chaiye chaahiye chahta chahti chahte wala wale wali waala
    waale waali kitna kitne kitni kaisa kaise kaisi kesa kese kesi kab kahan kaha
    kahaan kidhar kaun kon konsa kaunsa konse kaunse kis kisi koi kuch kuchh sab sabhi
    saare sare saarey sarey abhi aaj kal parso raat subah subha sham shaam dopahar
    dino hafte haftey hafta mahine mahina saal baje bajhe baad pehle pahle tak mein
    mei yaha yahan waha wahan ye yeh wo woh vo jo jab agar lekin magar phir fir toh
    bhai bhaiya bhaiyya yaar ji haan achha accha acha theek thik thoda thodi zyada
    jyada zada bahut bohot bhot hoga hogi honge hona hone hota hoti hote tha thi raha
    rahi rahe rha rhi gaya gayi gaye gya hua hui hue huwe kiya kiye diya diye lena lene
    dene jana jaana jaane jaunga jaungi aana aane aaye aaya sakte sakta sakti skta skte
    ek paanch paise paisa rupaye rupye rupay khana khaana mangwana mangwao mangao
    mangwa mangana mangwaya bhejo bhejna bhejne bheje bhejdo bhejiye wapas vapas wapis
    ghar pata samay waqt jaldi kyunki kyonki isliye matlab sahi galat bekar bakwas
    shukriya dhanyavaad dhanyawad dhanyavad namaste namaskar alvida chalo milte khatam
    shuru ruko roko rokein rokiye rok hatao badlo badal badle badlein badalna naya nayi
    naye purana kaam mausam mousam baarish barish garmi thand yaad dilaye dilayen
    dilaaye dilaayen dilao karaye karao karwao karwa lagega lagegi lagta lagti laga
    padega padegi padta bajao bajaye gaana gaane gaaney sunna sunao suna chahunga
    chahungi rakho rakhna rakh dekho dekhna dekhne dekh pucho poocho puchho pehla pehli
    doosra dusra agle agla agli agley aagle pichla pichle pichli zarurat zaroorat
    jarurat baare beech bich sath saath paas bahar baahar andar upar neeche niche
    nikal nikalta nikalna pahunch pahunchne pahuchne pohochne pahuch wajah hamesha
    kabhi sirf dijiyega kijiyega khareedne kharidna kharidne rasta raasta doori kharab
    sakoge sakogi bataoge batayenge batayega karoge karega karegi karenge milega milegi
    milenge aayega aayegi jayega jayegi jaega jaegi hoge banaye banao banado likho
    raho rahega rahegi lijiye dhundo dhundein dhundhe dohrayen dohraye jaye jayen dwara
    chup shant sandesh abtak kahin kahi yahi wahi aisa aise waisa jaisa mangta mangti
    chahiye hisab hisaab dukaan dukan bhugtan paisay kat kaat kata katna lautao lautado
    bajaiye sabi achi acchi usey boldo badlen badalen jod jodo lagayen lagao lagado batade
    batado bata bhej itna itni itne shubh sandhya madad nikla nikli chalta chalti dost haal suprabhat insaan aadmi bulao karwao karao uthwa khula khulta
    pahuncha pahunchega aya aayi ayi kuchh kijie bilkul zara jara
";

/// Romanised Hindi words that are also (rare) English words or names: half
/// the weight of a strong word.
const HINGLISH_WEAK: &str = "
    hu ho par le de na sun jane band chal das char tab ab mai han hun mat din bas pas mil
    bare hum lo teen har aj pe ram
";

/// English function words: each one pulls a Latin-script text towards `en`.
/// Words Hinglish borrows constantly (please, order, cancel) are not here:
/// they say nothing about which of the two it is.
const ENGLISH: &str = "
    the is are am was were be been being my i you your yours we our they their it its
    this that these those what how why when where which who whom whose can could would
    should will shall do does did have has had of for in on at and or with from by
    about to an a me there here not any some just it's i'm don't can't what's how's
    where's wanna gonna been into than then also very
";

/// Pairs where an otherwise Hindi word is English (or a dish): "chow mein",
/// "lo mein", "per se". The second word is ignored after the first.
const LATIN_EXCEPTIONS: &[(&str, &str)] = &[("chow", "mein"), ("lo", "mein"), ("per", "se")];

/// Marathi function words and common verb forms (Devanagari).
const MARATHI: &str = "
    आहे आहेत आहात आहोत नाही नाहीत मला मी तुम्ही तुम्हाला तुला काय कसे कसा कशी कशाला आणि
    पाहिजे करा करू करून करायचे करायची करायचा हवे हवा हवी हव्या आम्ही आम्हाला आमचा आमची
    आमचे माझा माझी माझे माझ्या तुमचा तुमची तुमचे तुमच्या त्याचा त्याची त्याचे होते होता
    होती झाला झाली झाले केले केला केली द्या सांगा कुठे कधी किती येथे इथे तिथे उद्या
    पण नको असे अजून अजुन बघा पाठवा दाखवा मिळेल मिळाले मिळाला परत येईल जाईल लवकर चालेल
";

/// Hindi function words and common verb forms (Devanagari), both spellings
/// of nasalised forms (हूँ/हूं).
const HINDI: &str = "
    है हैं नहीं नही मुझे मुझको मेरा मेरी मेरे आप आपका आपकी आपके आपको क्या कैसे कैसा कैसी
    और चाहिए करो करें करना करने कीजिए दीजिए कर का की के को से में पर हूँ हूं था थी थे यह
    वह ये वो कहाँ कहां कब कितना कितने कितनी लिए भी बताओ बताइए बताएं दिखाओ दिखाइए हम तुम
    तुम्हारा गया गई गए रहा रही रहे होगा होगी अभी कल बहुत मैं हमें हमारा हमारी भेजो भेजिए
    वापस पैसे मंगाना मंगवाना चाहता चाहती चाहते दो दें लेकिन क्यों कोई कुछ जल्दी
";

/// How much a Latin-script word says about the language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LatinCue {
    /// Units of Hindi evidence: 2 for a strong word, 1 for a weak one.
    Hindi(u32),
    English,
}

/// Weights of [`LatinCue::Hindi`].
const STRONG: u32 = 2;
const WEAK: u32 = 1;

/// Which Devanagari language a word points to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DevanagariCue {
    Hindi,
    Marathi,
}

/// A static word list hashed once. FNV-1a over a few bytes is cheaper than
/// SipHash, or than a ten-step binary search with a `memcmp` per step.
struct Lexicon<C> {
    words: HashMap<&'static [u8], C, BuildHasherDefault<Fnv1a>>,
}

impl<C: Copy> Lexicon<C> {
    /// Later lists win over earlier ones for a word listed twice.
    fn new(lists: &[(&'static str, C)]) -> Self {
        let mut words = HashMap::default();
        for &(list, cue) in lists {
            for word in list.split_whitespace() {
                words.insert(word.as_bytes(), cue);
            }
        }
        Lexicon { words }
    }

    fn get(&self, word: &[u8]) -> Option<C> {
        self.words.get(word).copied()
    }
}

/// FNV-1a. The keys are static and input words only look up, so there is
/// no table an attacker could flood: a fast hash is safe here.
struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv1a {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn write_usize(&mut self, n: usize) {
        // The length prefix of a slice: one mixing step is enough.
        self.0 = (self.0 ^ n as u64).wrapping_mul(0x0000_0100_0000_01b3);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

static LATIN: LazyLock<Lexicon<LatinCue>> = LazyLock::new(|| {
    Lexicon::new(&[
        (ENGLISH, LatinCue::English),
        (HINGLISH_WEAK, LatinCue::Hindi(WEAK)),
        (HINGLISH_STRONG, LatinCue::Hindi(STRONG)),
    ])
});

static DEVANAGARI: LazyLock<Lexicon<DevanagariCue>> = LazyLock::new(|| {
    Lexicon::new(&[
        (HINDI, DevanagariCue::Hindi),
        (MARATHI, DevanagariCue::Marathi),
    ])
});

/// Longest Latin word looked up; longer ones are in no list.
const MAX_WORD: usize = 16;

#[derive(Default)]
struct Tally {
    latin_letters: u32,
    devanagari_letters: u32,
    other_letters: u32,
    /// Romanised Hindi evidence in half-word units.
    hindi_units: u32,
    strong_hindi_words: u32,
    english_words: u32,
    hindi_words: u32,
    marathi_words: u32,
}

fn is_devanagari(c: char) -> bool {
    matches!(c, '\u{0900}'..='\u{097F}' | '\u{A8E0}'..='\u{A8FF}')
}

/// Latin letters, including accented ones (Latin-1 Supplement to Latin
/// Extended-B), so "café" is one Latin word.
fn is_latin_letter(c: char) -> bool {
    c.is_ascii_alphabetic() || (('\u{00C0}'..='\u{024F}').contains(&c) && c.is_alphabetic())
}

/// Detect the language of `text`; see the module documentation for the
/// rules.
pub fn detect(text: &str) -> Language {
    let tally = tally(text);
    let letters = tally.latin_letters + tally.devanagari_letters + tally.other_letters;
    if letters == 0 || tally.other_letters * 2 > letters {
        return Language::Other;
    }
    if tally.devanagari_letters > 0 && tally.devanagari_letters >= tally.latin_letters {
        return if tally.marathi_words > tally.hindi_words {
            Language::Mr
        } else {
            Language::Hi
        };
    }
    if tally.devanagari_letters > 0 {
        return Language::Hinglish;
    }
    // One strong Hindi word is enough unless English words outnumber the
    // Hindi evidence three to one ("Alarm create karo at 4 pm and 9 pm on
    // tuesday" is Hinglish; an English sentence quoting one Hindi word is
    // not). Weak words alone never are ("how's the lo mein at hun lee's").
    if tally.strong_hindi_words > 0 && tally.hindi_units * 3 >= tally.english_words * 2 {
        Language::Hinglish
    } else {
        Language::En
    }
}

/// The Latin word being read, lower-cased, and the one before it (for
/// [`LATIN_EXCEPTIONS`]). A word longer than [`MAX_WORD`] is in no list.
struct LatinWord {
    buf: [u8; MAX_WORD],
    len: usize,
    prev: [u8; MAX_WORD],
    prev_len: usize,
}

impl LatinWord {
    fn push(&mut self, byte: u8) {
        if self.len < MAX_WORD {
            self.buf[self.len] = byte;
        }
        self.len += 1;
    }

    fn finish(&mut self, lexicon: &Lexicon<LatinCue>, t: &mut Tally) {
        if self.len == 0 {
            return;
        }
        let len = self.len.min(MAX_WORD);
        let current = &self.buf[..len];
        if self.len <= MAX_WORD {
            let prev = &self.prev[..self.prev_len];
            let excepted = LATIN_EXCEPTIONS
                .iter()
                .any(|(first, second)| first.as_bytes() == prev && second.as_bytes() == current);
            match lexicon.get(current) {
                Some(LatinCue::Hindi(units)) if !excepted => {
                    t.hindi_units += units;
                    t.strong_hindi_words += u32::from(units == STRONG);
                }
                Some(LatinCue::English) => t.english_words += 1,
                _ => {}
            }
        }
        self.prev[..len].copy_from_slice(current);
        self.prev_len = len;
        self.len = 0;
    }
}

fn finish_devanagari(lexicon: &Lexicon<DevanagariCue>, word: &str, t: &mut Tally) {
    match lexicon.get(word.as_bytes()) {
        Some(DevanagariCue::Hindi) => t.hindi_words += 1,
        Some(DevanagariCue::Marathi) => t.marathi_words += 1,
        None => {}
    }
}

/// One pass over the characters: count letters per script and look each
/// word up in the lexicon of its script.
fn tally(text: &str) -> Tally {
    let mut t = Tally::default();
    let latin = &*LATIN;
    let devanagari = &*DEVANAGARI;
    let mut word = LatinWord {
        buf: [0; MAX_WORD],
        len: 0,
        prev: [0; MAX_WORD],
        prev_len: 0,
    };
    // Start of the current Devanagari word, as a byte offset.
    let mut deva_start: Option<usize> = None;

    for (i, c) in text.char_indices() {
        if is_devanagari(c) {
            word.finish(latin, &mut t);
            // Danda, double danda and Devanagari digits separate words.
            if matches!(c, '\u{0964}'..='\u{096F}') {
                if let Some(start) = deva_start.take() {
                    finish_devanagari(devanagari, &text[start..i], &mut t);
                }
                continue;
            }
            deva_start.get_or_insert(i);
            // Every other Devanagari code point (letters, vowel signs, marks)
            // counts: a range test, where `is_alphabetic` searches tables.
            t.devanagari_letters += 1;
            // LLA (ळ) is everyday Marathi and rare in Hindi.
            if c == '\u{0933}' {
                t.marathi_words += 1;
            }
            continue;
        }
        if let Some(start) = deva_start.take() {
            finish_devanagari(devanagari, &text[start..i], &mut t);
        }
        if is_latin_letter(c) {
            t.latin_letters += 1;
            // A non-ASCII letter (0) keeps the word out of the ASCII lexicon.
            word.push(if c.is_ascii() {
                c.to_ascii_lowercase() as u8
            } else {
                0
            });
        } else if c == '\'' && word.len > 0 {
            // Keep contractions ("it's") whole.
            word.push(b'\'');
        } else {
            word.finish(latin, &mut t);
            if c.is_alphabetic() {
                t.other_letters += 1;
            }
        }
    }
    word.finish(latin, &mut t);
    if let Some(start) = deva_start {
        finish_devanagari(devanagari, &text[start..], &mut t);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexicons_hold_every_listed_word() {
        for word in HINGLISH_STRONG.split_whitespace() {
            assert_eq!(
                LATIN.get(word.as_bytes()),
                Some(LatinCue::Hindi(2)),
                "{word}"
            );
        }
        for word in MARATHI.split_whitespace() {
            assert_eq!(
                DEVANAGARI.get(word.as_bytes()),
                Some(DevanagariCue::Marathi),
                "{word}"
            );
        }
        // A word in two lists would silently take the last list's cue.
        let strong: Vec<&str> = HINGLISH_STRONG.split_whitespace().collect();
        for word in HINGLISH_WEAK
            .split_whitespace()
            .chain(ENGLISH.split_whitespace())
        {
            assert!(!strong.contains(&word), "{word} is listed twice");
        }
        let hindi: Vec<&str> = HINDI.split_whitespace().collect();
        for word in MARATHI.split_whitespace() {
            assert!(!hindi.contains(&word), "{word} is both Hindi and Marathi");
        }
    }

    #[test]
    fn exceptions_cancel_the_hindi_reading() {
        assert_eq!(detect("one chicken chow mein"), Language::En);
        assert_eq!(detect("khana mein kya hai"), Language::Hinglish);
    }
}
