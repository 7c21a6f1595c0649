//! Slot fillers: the dishes, shops, places and numbers templates leave open.
//!
//! English and Hinglish share the Latin lists (users write "paneer tikka" in
//! both); Hinglish has its own grocery words; Hindi has Devanagari lists.
//! Numbers (order ids, amounts, phone numbers, pin codes) are generated.

use rand::Rng;

use crate::lang::Language;

const DISHES: &str = "\
    paneer butter masala|chicken biryani|veg biryani|masala dosa|chole bhature|\
    dal makhani|pav bhaji|aloo paratha|butter chicken|margherita pizza|\
    farmhouse pizza|veg burger|chicken momos|hakka noodles|veg fried rice|\
    idli sambar|veg thali|rajma chawal|kadai paneer|tandoori roti|garlic naan|\
    gulab jamun|chicken shawarma|egg rolls|cold coffee|samosas|vada pav|\
    fish curry|mutton rogan josh|chilli paneer|pasta alfredo|chicken wrap";

const DISHES_HI: &str = "\
    पनीर बटर मसाला|चिकन बिरयानी|वेज बिरयानी|मसाला डोसा|छोले भटूरे|दाल मखनी|पाव भाजी|\
    आलू पराठा|बटर चिकन|पिज़्ज़ा|बर्गर|मोमोज़|चाउमीन|इडली सांभर|वेज थाली|राजमा चावल|\
    कढ़ाई पनीर|तंदूरी रोटी|गुलाब जामुन|समोसे|कचौड़ी|मटर पनीर|पूरी सब्ज़ी|लस्सी";

const RESTAURANTS: &str = "\
    Punjabi Dhaba|Spice Garden|Biryani House|Udupi Cafe|Pizza Corner|Sagar Ratna|\
    Haldiram's|Momo Point|Bombay Bites|Tandoor Nights|Annapurna Bhojanalay|\
    Burger Barn|Chinese Wok|Saravana Bhavan|Cafe Mocha|Gupta Sweets|Royal Thali|\
    Kolkata Kathi Rolls";

const RESTAURANTS_HI: &str = "\
    शर्मा ढाबा|अग्रवाल भोजनालय|हल्दीराम|सागर रत्न|बीकानेर स्वीट्स|\
    अन्नपूर्णा रेस्टोरेंट|पंजाबी तड़का|गुप्ता जी की रसोई|उडुपी कैफ़े";

const STORES: &str = "\
    FreshMart|DailyBasket|the kirana store|Green Grocers|QuickMart|\
    the nearest store|Super Bazaar|City Bazaar";

const STORES_HI: &str = "किराना स्टोर|अपना बाज़ार|सुपर बाज़ार|फ्रेशमार्ट";

const ITEMS_EN: &str = "\
    milk|bread|eggs|rice|atta|toor dal|onions|tomatoes|potatoes|sugar|salt|\
    cooking oil|paneer|curd|butter|bananas|apples|tea|coffee|biscuits|maggi|\
    detergent|toothpaste|shampoo";

const ITEM_AMOUNTS_EN: &str = "\
    2 litres of milk|a loaf of bread|a dozen eggs|5 kg rice|10 kg atta|\
    1 kg toor dal|2 kg onions|a kilo of tomatoes|3 kg potatoes|1 kg sugar|\
    a packet of salt|a bottle of cooking oil|200 g paneer|a tub of curd|6 bananas|\
    a pack of tea|2 packets of maggi|a box of detergent";

const ITEMS_HINGLISH: &str = "\
    doodh|bread|ande|chawal|atta|dal|pyaaz|tamatar|aloo|cheeni|namak|tel|paneer|\
    dahi|makhan|kele|chai patti|biscuit|maggi|sabzi|dhaniya|surf";

const ITEM_AMOUNTS_HINGLISH: &str = "\
    2 litre doodh|ek packet bread|ek dozen ande|5 kilo chawal|10 kilo atta|\
    1 kilo arhar dal|2 kilo pyaaz|ek kilo tamatar|3 kilo aloo|1 kilo cheeni|\
    ek packet namak|ek bottle sarson ka tel|200 gram paneer|aadha kilo dahi|\
    ek darjan kele|do packet maggi";

const ITEMS_HI: &str = "\
    दूध|ब्रेड|अंडे|चावल|आटा|दाल|प्याज़|टमाटर|आलू|चीनी|नमक|तेल|पनीर|दही|मक्खन|केले|\
    चायपत्ती|सब्ज़ी";

const ITEM_AMOUNTS_HI: &str = "\
    दो लीटर दूध|एक पैकेट ब्रेड|एक दर्जन अंडे|पाँच किलो चावल|दस किलो आटा|\
    एक किलो अरहर की दाल|दो किलो प्याज़|एक किलो टमाटर|तीन किलो आलू|एक किलो चीनी|\
    सरसों का तेल|आधा किलो दही";

const CITIES: &str = "\
    Mumbai|Delhi|Pune|Bengaluru|Hyderabad|Jaipur|Lucknow|Kolkata|Chennai|Ahmedabad|\
    Indore|Nagpur|Chandigarh|Patna|Bhopal|Surat";

const CITIES_HI: &str = "\
    मुंबई|दिल्ली|पुणे|बेंगलुरु|हैदराबाद|जयपुर|लखनऊ|कोलकाता|चेन्नई|अहमदाबाद|इंदौर|\
    नागपुर|पटना|भोपाल";

const AREAS: &str = "\
    Andheri West|Koramangala|Sector 62 Noida|Salt Lake|Baner|Indiranagar|Powai|\
    Gachibowli|Malviya Nagar|Dwarka Sector 10|Bandra|Whitefield|Vaishali Nagar|\
    Gomti Nagar|Kothrud|Lajpat Nagar";

const AREAS_HI: &str = "\
    अंधेरी वेस्ट|सेक्टर 62 नोएडा|मालवीय नगर|द्वारका सेक्टर 10|गोमती नगर|लाजपत नगर|\
    कोथरूड|वैशाली नगर|बांद्रा";

const ADDRESS_HOUSES: &str = "\
    flat 302, Sunshine Apartments|house no 14|B-204, Green Valley|plot 7|\
    C-12, 2nd floor|room 5, Shanti Niwas|tower 3, flat 1104";

const ADDRESS_HOUSES_HI: &str = "मकान नंबर 14|फ्लैट 302|प्लॉट 7|कमरा 5, शांति निवास";

const PARCELS: &str = "\
    documents|laptop charger|house keys|gift box|birthday cake|clothes|\
    tiffin box|medicines|small package|passport|phone";

const PARCELS_HI: &str = "कागज़ात|चाबी|दवाइयाँ|कपड़े|टिफ़िन|तोहफ़ा|चार्जर";

const PEOPLE: &str = "Ravi|Priya|my mom|my brother|Anjali|Rahul|Sneha|Amit|my friend|Neha|Vikram";

const PEOPLE_HI: &str = "रवि|प्रिया|मम्मी|भाई|अंजलि|राहुल|दीदी|अमित";

const PAYMENTS: &str = "UPI|GPay|PhonePe|Paytm|credit card|debit card|net banking|wallet";

const PAYMENTS_HI: &str = "यूपीआई|कार्ड|पेटीएम|फ़ोनपे|नेट बैंकिंग|वॉलेट";

const TIMES: &str = "7 pm|8:30 pm|9 am|12 noon|10 pm|6:45 am|11 am|1:30 pm";

const TIMES_HI: &str = "शाम 7 बजे|रात 9 बजे|सुबह 8 बजे|दोपहर 1 बजे";

const DAYS: &str = "today|tomorrow|sunday|monday|saturday|friday|diwali";

const DAYS_HINGLISH: &str = "aaj|kal|sunday|monday|saturday|parso|diwali";

const DAYS_HI: &str = "आज|कल|रविवार|सोमवार|शनिवार|दिवाली";

/// Every slot name the templates may use (checked by tests).
#[cfg(test)]
pub(crate) const SLOTS: &str = "dish restaurant store item items city area address parcel person \
    payment time day order_id amount phone pincode minutes";

/// A filler for `slot` in `language`'s script and wording. Unknown slots
/// render as themselves so a typo shows up in a test, not as a panic.
pub(crate) fn fill<R: Rng>(slot: &str, language: Language, rng: &mut R) -> String {
    let hi = language == Language::Hi;
    let hinglish = language == Language::Hinglish;
    // Lists are `|`-separated so they stay compact under rustfmt.
    let pick = |rng: &mut R, latin: &str, deva: &str| -> String {
        let list = if hi { deva } else { latin };
        let n = list.split('|').count();
        list.split('|')
            .nth(rng.random_range(0..n))
            .unwrap_or_default()
            .to_string()
    };
    match slot {
        "dish" => pick(rng, DISHES, DISHES_HI),
        "restaurant" => pick(rng, RESTAURANTS, RESTAURANTS_HI),
        "store" => pick(rng, STORES, STORES_HI),
        "item" if hinglish => pick(rng, ITEMS_HINGLISH, ITEMS_HI),
        "item" => pick(rng, ITEMS_EN, ITEMS_HI),
        "items" if hinglish => pick(rng, ITEM_AMOUNTS_HINGLISH, ITEM_AMOUNTS_HI),
        "items" => pick(rng, ITEM_AMOUNTS_EN, ITEM_AMOUNTS_HI),
        "city" => pick(rng, CITIES, CITIES_HI),
        "area" => pick(rng, AREAS, AREAS_HI),
        "address" => {
            let house = pick(rng, ADDRESS_HOUSES, ADDRESS_HOUSES_HI);
            let area = pick(rng, AREAS, AREAS_HI);
            format!("{house}, {area}")
        }
        "parcel" => pick(rng, PARCELS, PARCELS_HI),
        "person" => pick(rng, PEOPLE, PEOPLE_HI),
        "payment" => pick(rng, PAYMENTS, PAYMENTS_HI),
        "time" => pick(rng, TIMES, TIMES_HI),
        "day" if hinglish => pick(rng, DAYS_HINGLISH, DAYS_HI),
        "day" => pick(rng, DAYS, DAYS_HI),
        "order_id" => order_id(rng),
        "amount" => amount(rng, language),
        "phone" => mobile_digits(rng),
        "pincode" => format!("{}", rng.random_range(110_001..=799_999)),
        "minutes" => format!("{}", 5 * rng.random_range(6..=24)),
        other => format!("{{{other}}}"),
    }
}

/// Order ids as users paste them: with or without the prefix and hash.
fn order_id<R: Rng>(rng: &mut R) -> String {
    let n = rng.random_range(1_000_000..10_000_000u32);
    match rng.random_range(0..3) {
        0 => format!("#{n}"),
        1 => format!("FW{n}"),
        _ => format!("{n}"),
    }
}

fn amount<R: Rng>(rng: &mut R, language: Language) -> String {
    let n = 10 * rng.random_range(5..=250u32);
    let form = rng.random_range(0..3);
    match (language, form) {
        (_, 0) => format!("₹{n}"),
        (Language::Hi, _) => format!("{n} रुपये"),
        (Language::Hinglish, 1) => format!("{n} rupaye"),
        (_, 1) => format!("Rs {n}"),
        _ => format!("{n} rs"),
    }
}

/// A fake Indian mobile number without the country code: ten digits, the
/// first 6–9 as real ones.
pub(crate) fn mobile_digits<R: Rng>(rng: &mut R) -> String {
    let first = rng.random_range(6..=9u32);
    let rest = rng.random_range(0..1_000_000_000u32);
    format!("{first}{rest:09}")
}
