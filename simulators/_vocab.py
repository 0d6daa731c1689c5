"""Made-up names, places and codes the synthetic population is drawn from.

Every street, provider and person here is invented; postcodes only follow the shape of the
area's districts (RM16-RM19, SS17).
"""

from __future__ import annotations

from typing import Final

from simulators.model import Coding, GPPractice, Worker

COUNCIL_ODS: Final = "LA883"
COUNCIL_NAME: Final = "Thurrock Council"
COMMUNITY_ODS: Final = "RWX"
COMMUNITY_NAME: Final = "Thurrock Community Health"

LOCALITIES: Final = ("Tilbury", "Purfleet", "Grays", "Corringham")

PRACTICES: Final = (
    GPPractice("F81001", "Tilbury Health Centre", "Tilbury"),
    GPPractice("F81002", "Purfleet Surgery", "Purfleet"),
    GPPractice("F81003", "Grays Medical Centre", "Grays"),
    GPPractice("F81004", "Corringham Practice", "Corringham"),
)
PRACTICE_BY_LOCALITY: Final = {p.locality: p for p in PRACTICES}

# Postcode district and sectors per locality.
POSTCODE_SECTORS: Final[dict[str, tuple[str, ...]]] = {
    "Tilbury": ("RM18 7", "RM18 8"),
    "Purfleet": ("RM19 1",),
    "Grays": ("RM16 2", "RM16 4", "RM17 5", "RM17 6"),
    "Corringham": ("SS17 7", "SS17 8"),
}
POSTCODE_UNITS: Final = "ABDEFGHJLNPQRSTUWXYZ"

STREETS: Final[dict[str, tuple[str, ...]]] = {
    "Tilbury": ("Quayside Walk", "Anchor Lane", "Mariners Close", "Pilot Row", "Saltings Drive",
                "Capstan Road", "Tidewater Close", "Ferryman Way"),
    "Purfleet": ("Riverview Road", "Beacon Way", "Harbour Crescent", "Lighthouse Mews",
                 "Powder Mill Lane", "Chalk Cliff Road"),
    "Grays": ("Orchard Rise", "Thameside Court", "Heron Way", "Kingfisher Road", "Marsh Lane",
              "Windmill Close", "Bridge Meadow", "Copse View", "Alder Grove", "Cedar Drive"),
    "Corringham": ("Fenland Avenue", "Church Meadow", "Oakfield Way", "Brook Lane",
                   "Manor Fields", "Lapwing Close", "Sandpiper Road"),
}

FEMALE_NAMES: Final = (
    "Joan", "Margaret", "Patricia", "Jean", "Sheila", "Doreen", "Betty", "Maureen", "Irene",
    "Eileen", "Brenda", "Barbara", "Sylvia", "Pauline", "Valerie", "Christine", "Janet",
    "Susan", "Linda", "Carol", "Priya", "Amina", "Grace", "Mei", "Olufunke", "Aisha",
    "Rita", "Elsie", "Vera", "Dorothy",
)
MALE_NAMES: Final = (
    "John", "David", "Peter", "Michael", "Brian", "Alan", "Kenneth", "Ronald", "Terence",
    "Derek", "Colin", "Roy", "Dennis", "Keith", "Raymond", "Anthony", "Stephen", "Graham",
    "Raj", "Tunde", "Wei", "Imran", "Winston", "Patrick", "Stanley", "Frank", "George",
    "Albert", "Leonard", "Harold",
)
FAMILY_NAMES: Final = (
    "Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Robinson",
    "Wright", "Thompson", "Evans", "Walker", "White", "Roberts", "Green", "Hall", "Wood",
    "Jackson", "Clarke", "Patel", "Khan", "Okafor", "Chen", "Begum", "Murphy", "Kelly",
    "Baker", "Harris", "Lewis", "Turner", "Cooper", "Hill", "Ward", "Morris", "Moore",
    "Mensah", "Adeyemi", "Singh", "Fletcher",
)

# Ethnic categories with rough weights for an older local population.
# Ethnic category (NHS Data Dictionary letters): the display each system sends with it, and
# how often the population holds it.
ETHNIC_CATEGORIES: Final = (
    ("A", "White - British", 78),
    ("B", "White - Irish", 2),
    ("C", "White - Any other White background", 4),
    ("H", "Asian or Asian British - Indian", 2),
    ("J", "Asian or Asian British - Pakistani", 1),
    ("K", "Asian or Asian British - Bangladeshi", 1),
    ("M", "Black or Black British - Caribbean", 2),
    ("N", "Black or Black British - African", 3),
    ("R", "Other Ethnic Groups - Chinese", 1),
    ("S", "Other Ethnic Groups - Any other ethnic group", 1),
    ("Z", "Not stated", 3),
    ("99", "Not known", 2),
)
ETHNICITY_WEIGHTS: Final = tuple((code, weight) for code, _, weight in ETHNIC_CATEGORIES)
ETHNIC_CATEGORY_DISPLAY: Final = {code: display for code, display, _ in ETHNIC_CATEGORIES}
# Local two-character ethnic sub-codes some community systems send (first letter = category).
LOCAL_ETHNIC_SUBCODES: Final[dict[str, str]] = {
    "CA": "White - English",
    "CB": "White - Scottish",
    "CP": "White - Polish",
    "NC": "Black - Nigerian",
    "LH": "Asian - Sri Lankan",
}

PSR: Final = (
    ("PSR01", "Physical Support: Access and mobility only"),
    ("PSR02", "Physical Support: Personal Care Support"),
    ("PSR03", "Sensory Support: Support for visual impairment"),
    ("PSR05", "Sensory Support: Support for dual impairment"),
    ("PSR06", "Support with Memory and Cognition"),
    ("PSR07", "Learning Disability Support"),
    ("PSR08", "Mental Health Support"),
    ("PSR09", "Social Support: Substance misuse support"),
    ("PSR10", "Social Support: Asylum seeker support"),
    ("PSR11", "Social Support: Support for Social Isolation/Other"),
)

TEAMS: Final = {
    "Tilbury": "Tilbury Community Led Support",
    "Purfleet": "Purfleet Community Led Support",
    "Grays": "Grays Community Led Support",
    "Corringham": "Corringham Community Led Support",
}
WORKERS: Final = tuple(
    Worker(f"SW{n:04d}", name, role, team)
    for n, (name, role, team) in enumerate(
        (
            ("Sam Patel", "Social Worker", TEAMS["Tilbury"]),
            ("Alex Morgan", "Senior Practitioner", TEAMS["Tilbury"]),
            ("Chris Dunn", "Care Coordinator", TEAMS["Tilbury"]),
            ("Jo Whitfield", "Social Worker", TEAMS["Purfleet"]),
            ("Ade Bakare", "Occupational Therapist", TEAMS["Purfleet"]),
            ("Kim Lowe", "Social Worker", TEAMS["Grays"]),
            ("Nadia Rahman", "Senior Practitioner", TEAMS["Grays"]),
            ("Tom Ashby", "Care Coordinator", TEAMS["Grays"]),
            ("Ellie Short", "Occupational Therapist", TEAMS["Grays"]),
            ("Ravi Mistry", "Social Worker", TEAMS["Corringham"]),
            ("Beth Carey", "Care Coordinator", TEAMS["Corringham"]),
            ("Lou Mercer", "Reablement Officer", "Thurrock Reablement Service"),
            ("Dan Oyelaran", "Reablement Officer", "Thurrock Reablement Service"),
            ("Helen Price", "Safeguarding Lead", "Safeguarding Adults Team"),
            ("Mark Doyle", "Social Worker", "Safeguarding Adults Team"),
            ("Fran Li", "Carers Support Worker", "Carers Hub"),
        ),
        start=40,
    )
)

PLAN_TYPE_WEIGHTS: Final = (
    ("care-and-support", 60), ("reablement", 15), ("carer-support", 10),
    ("safeguarding-protection", 2), ("respite", 4), ("Direct Payment Review", 3),
    ("CHC-joint-funded", 2), ("review-only", 4),
)
PLAN_STATUS_WEIGHTS: Final = (
    ("active", 55), ("under-review", 10), ("ended", 20), ("cancelled", 6), ("draft", 9),
)
PLAN_TITLES: Final = {
    "care-and-support": "Care and support plan",
    "reablement": "Reablement plan",
    "carer-support": "Carer's support plan",
    "safeguarding-protection": "Safeguarding protection plan",
}
NEEDS: Final = (
    ("Managing and maintaining nutrition", "Needs help preparing meals"),
    ("Maintaining personal hygiene", "Needs help to wash and dress each morning"),
    ("Managing toilet needs", "Needs prompting and help with continence products"),
    ("Being appropriately clothed", "Needs help choosing and putting on clothes"),
    ("Being able to make use of the home safely", "At risk of falls on the stairs"),
    ("Maintaining a habitable home environment", "Cannot manage cleaning and laundry"),
    ("Developing and maintaining family or other personal relationships",
     "Isolated since partner died"),
    ("Making use of necessary facilities or services in the local community",
     "Cannot use buses without support"),
)
OUTCOMES: Final = (
    "To remain living at home safely",
    "To get back to doing my own shopping",
    "To see my grandchildren every week",
    "To feel less lonely",
    "To be able to wash and dress myself again",
    "To give my husband a break from caring",
)
PROVIDERS: Final = (
    ("Riverside Home Care Ltd", "1-100000001"),
    ("Estuary Care Services", "1-100000002"),
    ("Thameview Day Centre", "1-100000003"),
    ("Chalkhill Nursing Home", "1-100000004"),
    ("Careline Thurrock", None),
    ("Hot Meals on Wheels CIC", None),
)
SERVICE_KINDS: Final = (
    ("home-care", "Personal care, {n} calls daily", "day"),
    ("day-care", "Day centre, {n} days a week", "week"),
    ("meals", "Hot meal delivered, {n} a day", "day"),
    ("telecare", "Pendant alarm and falls detector", None),
    ("equipment", "Bath lift and grab rails", None),
    ("direct-payment", "Direct payment for a personal assistant", "week"),
    ("respite-breaks", "Planned respite, {n} nights a month", "month"),
)
FREE_TEXT_FREQUENCIES: Final = (
    "twice weekly", "Mon/Wed/Fri am", "as required", "4x daily (QDS)", "fortnightly",
    "weekends only",
)

SNOMED: Final = "http://snomed.info/sct"
CARE_PLAN_CATEGORIES: Final = (
    Coding(SNOMED, "773130005", "Nursing care plan"),
    Coding(SNOMED, "736055001", "Rehabilitation care plan"),
    Coding(SNOMED, "735985000", "Diabetes self-management plan"),
    Coding(SNOMED, "734163000", "Care plan"),
)
MENTAL_HEALTH_CATEGORY: Final = Coding(SNOMED, "718347000", "Mental health care plan")
CARE_PLAN_TITLES: Final = {
    "773130005": ("District nursing care plan", "Wound care and continence review"),
    "736055001": ("Community rehabilitation plan", "Strength and balance after a fall"),
    "735985000": ("Diabetes care plan", "Insulin support and foot checks"),
    "734163000": ("Frailty care plan", "Anticipatory care and medicines review"),
    "718347000": ("Mental health care plan", "Community mental health team support"),
}
COMMUNITY_PLAN_STATUS_WEIGHTS: Final = (
    ("active", 55), ("completed", 20), ("suspended", 8), ("cancelled", 7), ("draft", 6),
    ("entered-in-error", 2), ("unknown", 2),
)
PRACTITIONER_ROLES: Final = (
    Coding(SNOMED, "224535009", "Registered nurse"),
    Coding(SNOMED, "309398001", "Physiotherapist"),
    Coding(SNOMED, "80546007", "Occupational therapist"),
    Coding(SNOMED, "158965000", "Medical practitioner"),
    Coding(SNOMED, "80584001", "Psychiatrist"),
    Coding(SNOMED, "159141008", "Community psychiatric nurse"),
)
CARE_TEAM_CATEGORY: Final = Coding(
    "http://loinc.org", "LA28865-6", "Longitudinal care-coordination focused care team"
)
CARE_TEAM_NAMES: Final = (
    "{locality} Integrated Care Team",
    "{locality} District Nursing Team",
    "Thurrock Community Mental Health Team",
    "Thurrock Falls and Frailty Team",
)

# --- STU3 code systems -----------------------------------------------------------------
# The simulated systems' own copies: a vendor system does not share the gateway's tables, and
# a simulator that did could not catch a wrong entry in them.
ODS_ORGANISATION_SYSTEM: Final = "https://fhir.nhs.uk/Id/ods-organization-code"
STU3_CONFIDENTIALITY_SYSTEM: Final = "http://hl7.org/fhir/v3/Confidentiality"
STU3_CONFIDENTIALITY_DISPLAY: Final = {"R": "restricted", "V": "very restricted"}
STU3_ACT_CODE_SYSTEM: Final = "http://hl7.org/fhir/v3/ActCode"
STU3_VERIFICATION_EXTENSION: Final = (
    "https://fhir.hl7.org.uk/STU3/StructureDefinition/"
    "Extension-CareConnect-NHSNumberVerificationStatus-1"
)
STU3_GPC_VERIFICATION_EXTENSION: Final = (
    "https://fhir.nhs.uk/STU3/StructureDefinition/"
    "Extension-CareConnect-GPC-NHSNumberVerificationStatus-1"
)
STU3_VERIFICATION_SYSTEM: Final = (
    "https://fhir.hl7.org.uk/STU3/CodeSystem/CareConnect-NHSNumberVerificationStatus-1"
)
STU3_VERIFICATION_SYSTEM_NHS: Final = (
    "https://fhir.nhs.uk/STU3/CodeSystem/CareConnect-NHSNumberVerificationStatus-1"
)
STU3_VERIFICATION_SYSTEM_GPC: Final = "https://fhir.nhs.uk/CareConnect-NHSNumberVerificationStatus-1"
STU3_ETHNIC_EXTENSION: Final = (
    "https://fhir.hl7.org.uk/STU3/StructureDefinition/Extension-CareConnect-EthnicCategory-1"
)
STU3_ETHNIC_SYSTEM: Final = "https://fhir.hl7.org.uk/STU3/CodeSystem/CareConnect-EthnicCategory-1"
STU3_ETHNIC_SYSTEM_NHS: Final = "https://fhir.nhs.uk/STU3/CodeSystem/CareConnect-EthnicCategory-1"
PAS_NUMBER_SYSTEM: Final = "https://fhir.thurrock-community.example.nhs.uk/Id/pas-number"
RIO_NUMBER_SYSTEM: Final = "https://fhir.thurrock-community.example.nhs.uk/Id/rio-client-id"
